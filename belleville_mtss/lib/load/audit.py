"""What happened to each drop, from the audit (dm.IngestionFiles) and the error log (dm.IngestionErrors): files,
outcomes, times and error counts. Never a student value: both tables hold file names, counts and reasons only."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from .warehouse import ingestion_errors, ingestion_files


def _scope(column, scope: str | None):
    if not scope:
        return sa.true()
    return column == scope if "/" in scope else column.like(f"{scope}/%")


def drop_status(engine: sa.Engine, scope: str | None = None) -> str:
    f, e = ingestion_files.c, ingestion_errors.c
    with engine.connect() as conn:
        files = conn.execute(sa.select(f.DropId, f.DropVersion, f.RunId, f.FileName, f.SizeBytes, f.Outcome,
                                       f.ReceivedAt, f.OutcomeAt, f.DuplicateOf)
                             .where(_scope(f.DropId, scope)).order_by(f.DropId, f.ReceivedAt, f.FileId)).all()
        errors = conn.execute(sa.select(e.DropId, e.Stage, e.Reason, sa.func.count(), sa.func.sum(e.RowCount))
                              .where(_scope(e.DropId, scope)).group_by(e.DropId, e.Stage, e.Reason)
                              .order_by(e.DropId, e.Stage, e.Reason)).all()
    drops = sorted({r.DropId for r in files} | {r[0] for r in errors if r[0]})
    if not drops:
        return f"no drop recorded{' for ' + scope if scope else ''}"
    out = []
    for drop in drops:
        out.append(drop)
        runs: dict[tuple, list] = {}
        for r in files:
            if r.DropId == drop:
                runs.setdefault((r.DropVersion, r.RunId, r.ReceivedAt), []).append(r)
        for (version, run_id, received), rows in runs.items():
            out.append(f"  version {version} · run {(run_id or '-')[:8]} · received {received:%Y-%m-%d %H:%M:%S}")
            for r in rows:
                same = f" (same bytes as {r.DuplicateOf})" if r.DuplicateOf else ""
                out.append(f"    {r.FileName:<28} {r.SizeBytes:>14,} B  {r.Outcome:<9} {r.OutcomeAt:%Y-%m-%d %H:%M:%S}"
                           f"{same}")
        counts = [f"{stage}/{reason} {n}" + (f" ({rows:,} rows)" if rows else "")
                  for d, stage, reason, n, rows in errors if d == drop]
        out.append(f"  errors: {', '.join(counts) if counts else 'none'}")
    return "\n".join(out)


def last_drops(engine: sa.Engine) -> dict[str, float]:
    """Each district's last drop (epoch seconds): when its newest drop version was first received. A replay from
    staging adds audit rows but is not a new drop, so each version counts from its first receipt."""
    f = ingestion_files.c
    with engine.connect() as conn:
        versions = conn.execute(sa.select(f.DropId, sa.func.min(f.ReceivedAt))
                                .group_by(f.DropId, f.DropVersion)).all()
    last: dict[str, float] = {}
    for drop_id, first_received in versions:
        district = drop_id.split("/", 1)[0]
        when = first_received.replace(tzinfo=dt.timezone.utc).timestamp()  # stored as naive UTC
        last[district] = max(when, last.get(district, when))
    return last
