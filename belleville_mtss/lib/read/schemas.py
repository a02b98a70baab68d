"""Checking a frame against its source's pandera model (lib/sources/<source>/). Row-level cleaning happens before
this: a failure here means a bug or a file we do not understand, so messages carry check names, never values."""
from __future__ import annotations

import pandera.polars as pa
import polars as pl


def validate(schema: type[pa.DataFrameModel], frame: pl.DataFrame, file_name: str) -> pl.DataFrame:
    from .csvfile import FileRejected

    try:
        return schema.validate(frame, lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        failed = _failed_checks(exc)
        raise FileRejected("schema", f"{file_name}: failed schema {schema.__name__} ({failed})") from None


def _failed_checks(exc: Exception) -> str:
    cases = getattr(exc, "failure_cases", None)
    if cases is None:
        return type(exc).__name__
    # Column and check names only; failure_cases also holds the offending values, which may be PII.
    pairs = sorted({f"{c}:{k}" for c, k in cases.select("column", "check").iter_rows()})
    return ", ".join(pairs[:10])
