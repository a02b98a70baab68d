"""What happened to each drop, from the audit (dm.IngestionFiles) and the error log (dm.IngestionErrors): files,
outcomes, times and error counts. Never a student value: both tables hold file names, counts and reasons only."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from .warehouse import ingestion_errors, ingestion_files


def _scope(column, scope: str | None):
    if not scope:
        return sa.true()
    # a district's name may hold "_", which LIKE reads as any character: escaped, as rekey's are
    return column == scope if "/" in scope else column.startswith(f"{scope}/", autoescape=True)


def drop_status(engine: sa.Engine, scope: str | None = None, summary: bool = False,
                outcome: str | None = None) -> str:
    """Each drop's receipts, files, outcomes and error counts, grouped in one pass (linear in rows). Each receipt's
    errors are its run's (a replay's are not the first run's again); the errors of runs that received nothing (a
    refused drop, a server that did not answer) are listed apart. `summary`: one line per drop (its latest receipt's
    outcomes and its errors, with those of runs that received nothing) after a total; `outcome`: only the drops
    whose latest receipt has a file with that outcome."""
    f, e = ingestion_files.c, ingestion_errors.c
    with engine.connect() as conn:
        files = conn.execute(sa.select(f.DropId, f.DropVersion, f.RunId, f.FileName, f.SizeBytes, f.Outcome,
                                       f.ReceivedAt, f.OutcomeAt, f.DuplicateOf)
                             # receipts in the order the audit took them: hosts' clocks may disagree
                             .where(_scope(f.DropId, scope)).order_by(f.DropId, f.FileId)).all()
        errors = conn.execute(sa.select(e.DropId, e.RunId, e.Stage, e.Reason, sa.func.count(),
                                        sa.func.sum(e.RowCount))
                              .where(_scope(e.DropId, scope)).group_by(e.DropId, e.RunId, e.Stage, e.Reason)
                              .order_by(e.DropId, e.Stage, e.Reason)).all()
    runs: dict[str, dict[tuple, list]] = {}  # drop -> (version, run, received) -> its files, in order
    for r in files:
        runs.setdefault(r.DropId, {}).setdefault((r.DropVersion, r.RunId, r.ReceivedAt), []).append(r)
    received = {(drop, run_id) for drop, receipts in runs.items() for _version, run_id, _at in receipts}
    summed: dict[str, dict[str | None, dict]] = {}  # drop -> run (None: runs that received nothing) -> its errors
    for drop, run_id, stage, reason, n, rows in errors:
        by_reason = summed.setdefault(drop, {}).setdefault(run_id if (drop, run_id) in received else None, {})
        before = by_reason.get((stage, reason), (0, None))
        by_reason[(stage, reason)] = (before[0] + n, (before[1] or 0) + rows if rows is not None else before[1])
    counts = {drop: {run: [(*key, n, rows) for key, (n, rows) in sorted(by.items())] for run, by in runs_.items()}
              for drop, runs_ in summed.items()}
    drops = sorted(set(runs) | {d for d in counts if d})
    if outcome:
        drops = [d for d in drops if d in runs and outcome in {r.Outcome for r in list(runs[d].values())[-1]}]
    if not drops:
        return f"no drop recorded{' for ' + scope if scope else ''}{' with outcome ' + outcome if outcome else ''}"
    if summary:
        return _summary(drops, runs, counts)
    out = []
    for drop in drops:
        out.append(drop)
        for (version, run_id, received), rows in runs.get(drop, {}).items():
            out.append(f"  version {version} · run {(run_id or '-')[:8]} · received {received:%Y-%m-%d %H:%M:%S}")
            for r in rows:
                same = f" (same bytes as {r.DuplicateOf})" if r.DuplicateOf else ""
                out.append(f"    {r.FileName:<28} {r.SizeBytes:>14,} B  {r.Outcome:<9} {r.OutcomeAt:%Y-%m-%d %H:%M:%S}"
                           f"{same}")
            out.append(f"    errors: {_listed(counts.get(drop, {}).get(run_id, []))}")
        if None in counts.get(drop, {}):
            out.append(f"  errors of runs that received nothing: {_listed(counts[drop][None])}")
    return "\n".join(out)


def _listed(errors: list) -> str:
    return ", ".join(f"{stage}/{reason} {n}" + (f" ({rows:,} rows)" if rows else "")
                     for stage, reason, n, rows in errors) or "none"


def _summary(drops: list[str], runs: dict, counts: dict) -> str:
    latest = {d: list(runs[d].values())[-1] for d in drops if d in runs}
    by_outcome: dict[str, int] = {}
    for rows in latest.values():
        for r in rows:
            by_outcome[r.Outcome] = by_outcome.get(r.Outcome, 0) + 1
    total = ", ".join(f"{n:,} {o}" for o, n in sorted(by_outcome.items()))
    out = [f"{len(drops):,} drop(s) of {len({d.split('/', 1)[0] for d in drops}):,} district(s); files of each "
           f"drop's latest receipt: {total or 'none'}"]
    for drop in drops:
        rows = latest.get(drop, [])
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(
            {o: sum(r.Outcome == o for r in rows) for o in {r.Outcome for r in rows}}.items()))
        when = f"{rows[0].ReceivedAt:%Y-%m-%d %H:%M}" if rows else "never received"
        latest_run = list(runs[drop])[-1][1] if drop in runs else None
        errors = sum(n for run_id in {latest_run, None} for _stage, _reason, n, _rows
                     in counts.get(drop, {}).get(run_id, []))
        out.append(f"  {drop:<40} {when:<16} {len(runs.get(drop, {}))} receipt(s)  {outcomes or '-'}  "
                   f"errors {errors}")
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
