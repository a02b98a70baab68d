"""PowerSchool student exports: the district's headers (from its registry entry) mapped onto our columns."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from .csvfile import FileRejected, read_text_csv
from .registry import POWERSCHOOL_OPTIONAL, PowerSchoolFormat
from .warehouse import ROSTER_FROM_POWERSCHOOL, max_lengths, student_roster, value_too_long

STORED_LENGTHS = max_lengths(student_roster, ROSTER_FROM_POWERSCHOOL)


def email_key(col: pl.Expr) -> pl.Expr:
    """The join key for emails: case and surrounding whitespace do not make two addresses different."""
    key = col.str.strip_chars().str.to_lowercase()
    return pl.when(key == "").then(None).otherwise(key)


def read_powerschool(path: Path, fmt: PowerSchoolFormat, data: bytes | None = None,
                     max_rows: int | None = None) -> pl.DataFrame:
    mapped = {h.strip().lower() for h in fmt.columns.values()}
    return read_text_csv(
        path,
        data=data,
        max_rows=max_rows,
        select=lambda header: [h for h in header if h.strip().lower() in mapped],  # the rest is never kept
        delimiter=fmt.delimiter,
        encoding=fmt.encoding,
        has_header=fmt.has_header,
        column_names=fmt.column_order,
    )


def map_columns(raw: pl.DataFrame, fmt: PowerSchoolFormat, file_name: str) -> pl.DataFrame:
    """Rename the district's headers to ours (case-insensitive); refuse a file missing a mapped column."""
    by_lower = {c.strip().lower(): c for c in raw.columns}
    missing = [header for header in fmt.columns.values() if header.strip().lower() not in by_lower]
    if missing:
        raise FileRejected(
            "missing_columns",
            f"{file_name}: missing column(s) {', '.join(missing)} named in the district registry",
        )
    exprs = [pl.col(by_lower[h.strip().lower()]).alias(ours) for ours, h in fmt.columns.items()]
    exprs += [pl.lit(None, dtype=pl.Utf8).alias(c) for c in POWERSCHOOL_OPTIONAL if c not in fmt.columns]
    return raw.select(exprs)


def type_students(mapped: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed students and rejected rows (source row, reason). Student numbers stay text: leading zeros count."""
    blank = pl.col("student_number").is_null() | (pl.col("student_number") == "")
    duplicated = pl.col("student_number").is_duplicated() & ~blank
    reason = value_too_long(STORED_LENGTHS, pl.when(blank).then(pl.lit("missing student number"))
                            .when(duplicated).then(pl.lit("duplicate student number")))
    # One lazy pass; the usual file has no bad row, and then the typed frame is not copied by a filter.
    frame = mapped.lazy().with_row_index("source_row", offset=2).with_columns(
        pl.col("student_number").str.strip_chars(),
        pl.col("email").str.strip_chars(),
        email_key(pl.col("email")).alias("email_key"),
        pl.col("grade_level").str.strip_chars(),
        pl.col("school_id").str.strip_chars(),
    ).with_columns(reason.alias("reject_reason")).select(
        "student_number", "email", "email_key", "first_name", "last_name", "grade_level", "school_id", "source_row",
        "reject_reason",
    ).collect()
    rejected = frame.filter(pl.col("reject_reason").is_not_null()).select("source_row", "reject_reason")
    typed = frame.filter(pl.col("reject_reason").is_null()) if rejected.height else frame
    return typed.drop("reject_reason"), rejected
