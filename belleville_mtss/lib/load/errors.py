"""The error log, dm.IngestionErrors: file, district, drop, timestamp, stage, reason, count and message.

Messages are built by our own code from file names, column names, counts and district names (only those evidently
a district's: lib/district/crosswalk.py `_shown`); never from a student's cell values. `record_errors` writes what
looks like an email address in a message as <account> (an address slipping through: a sender's folder named after
one, say): the row is still written, for an error that goes unlogged is lost.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa

from ..receive.untrusted import BadName, escape, parse_drop_key, without_accounts
from .warehouse import TEXT_NOT_STORABLE, VALUE_TOO_LONG, chunked, ingestion_errors, mark_files, now

ROWS_NAMED = 10  # row numbers a message names, at most


@dataclass(frozen=True)
class ErrorRecord:
    stage: str  # receive, ingest, validation, mapping, district, identity, warehouse
    reason: str
    message: str
    file_name: str | None = None
    row_count: int | None = None


def row_rejections(rejected: pl.DataFrame, stage: str, file_name: str) -> list[ErrorRecord]:
    """One record per reason, with the number of rows: counts, not the rows themselves."""
    if rejected.is_empty():
        return []
    counts = rejected.group_by("reject_reason").agg(pl.len(), pl.col("source_row").sort().head(ROWS_NAMED))
    records = []
    for reason, n, rows in counts.sort("reject_reason").iter_rows():
        kind = next((k for k in (VALUE_TOO_LONG, TEXT_NOT_STORABLE) if reason.startswith(k)), "row_rejected")
        # a character no warehouse can store: the rows are named (their numbers in the file, never their values)
        at = f" (row {', '.join(map(str, rows))}{', ...' if n > len(rows) else ''})" if kind == TEXT_NOT_STORABLE else ""
        records.append(ErrorRecord(stage, kind, f"{file_name}: {n} row(s) rejected: {reason}{at}", file_name, n))
    return records


def drop_ids(key: str, registry: dict) -> tuple[int | None, str]:
    """(DistrictId, DropId) for an error row: the registry's AccountInfoId when the key names a registry district,
    and the key, escaped when it is not canonical (a refused name is never stored as given, nor under the drop
    it is another spelling of, whose status it is not)."""
    try:
        parsed = parse_drop_key(key)
        district, drop_id = parsed.district, str(parsed)
        if drop_id != key:
            raise BadName(key)
    except BadName:
        district, drop_id = str(key).partition("/")[0].lower(), escape(str(key), limit=150)
    entry = registry.get(district) or getattr(registry, "problems", {}).get(district)
    return (entry.account_info_id if entry else None), drop_id


def refusals(engine: sa.Engine, reasons: tuple[str, ...], drop_ids: list[str]) -> dict[str, tuple[int, object]]:
    """How many times each drop was refused for one of `reasons` (dm.IngestionErrors), and when last."""
    e = ingestion_errors.c
    with engine.connect() as conn:
        return {drop: (n, last) for part in chunked(set(drop_ids)) for drop, n, last in conn.execute(
            sa.select(e.DropId, sa.func.count(), sa.func.max(e.OccurredAt))
            .where(e.Reason.in_(reasons) & e.DropId.in_(part)).group_by(e.DropId))}


def fitted(text: str, units: int) -> str:
    """The text cut to `units` as SQL Server's NVARCHAR counts them (two for a character above U+FFFF), never
    through a character."""
    return text.encode("utf-16-le")[:2 * units].decode("utf-16-le", errors="ignore")


def record_errors(
    engine: sa.Engine, records: list[ErrorRecord], *, district_id: int | None, drop_id: str | None, run_id: str | None
) -> None:
    if not records:
        return
    stamp = now()
    rows = []
    for r in records:
        rows.append(
            {
                "OccurredAt": stamp, "DistrictId": district_id, "DropId": drop_id, "FileName": r.file_name,
                "Stage": r.stage, "Reason": r.reason, "RowCount": r.row_count,
                "Message": fitted(without_accounts(r.message), ingestion_errors.c.Message.type.length),
                "RunId": run_id,
            }
        )
    with engine.begin() as conn:
        conn.execute(ingestion_errors.insert(), rows)


def settle_failed_run(engine: sa.Engine, registry: Callable[[], dict], drop_key: str, run_id: str,
                      causes: dict[str, str]) -> None:
    """A failed run's end: its files still `received` become `failed`, and one row (stage `run`) names the steps that
    failed and the class of each one's error (its text, which may quote a value, stays in the run's log): every
    failed run is in the error log, whether or not a step wrote a row of its own (a run's rows may be warnings only,
    its rows of rejected values, say). A run another run found dead has its `run` row already. `registry`: read only
    for that row's district."""
    from ..district.registry import RegistryError
    mark_files(engine, drop_key, run_id, "failed")
    e = ingestion_errors.c
    with engine.connect() as conn:
        if conn.execute(sa.select(e.RunId).where((e.RunId == run_id) & (e.Stage == "run")).limit(1)).first():
            return
    steps = ", ".join(f"{step} ({cls})" for step, cls in causes.items()) or "the run itself"
    try:
        district_id, drop_id = drop_ids(drop_key, registry())
    except RegistryError:  # the registry itself is what failed (its step said so): the row names no district
        district_id, drop_id = drop_ids(drop_key, {})
    record_errors(engine, [ErrorRecord("run", "failed", f"the run failed: {steps}; the run's log holds each error, "
                                                        "the rows of its steps say what they found")],
                  district_id=district_id, drop_id=drop_id, run_id=run_id)
