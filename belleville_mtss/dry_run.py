"""`belleville-mtss run DISTRICT/DROP --dry-run`: every stage and check of a drop, and what it would load, with
nothing written to the warehouse (no rows, no audit, no error row) and no Dagster run.

The drop is fetched into a temporary staging folder, encrypted as a run's staged copy is (or, when the server no
longer holds it, its staged copy is read); its files are decrypted into memory only, never onto disk; the stages
run as `process_drop` composes them (lib/pipeline.py, the asset graph's order and guards), reading the
other teams' tables and the district's current roster; the replace checks then read what the warehouse holds, in
a read-only connection, as the load would inside its transaction.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .lib.config import Settings
from .lib.district.registry import RegistryError, load_registry
from .lib.checks import decide, stopped_as
from .lib.load.warehouse import make_engine, results_scopes, under_other_ids
from .lib.pipeline import (CoreResult, NewerHolds, process_drop, replace_evidence, superseded_in_part,
                           with_acceptances)
from .lib.read.theirs import SourceTableError, read_account_info, read_classlink_students
from .lib.read.ingest import drop_files
from .lib.receive.drops import DropRefused, read_staged, receive_or_replay, why_unreadable
from .lib.receive.sftp import SftpFatal, SftpTransient
from .lib.receive.untrusted import parse_drop_key
from .lib.receive.vault import VaultError
from .lib.students import gates, review
from .report import EXIT_CODES


@dataclass
class DryRun:
    key: str
    lines: list[str] = field(default_factory=list)
    outcome: str = "failed"  # what a run would end as (report.py's words): loaded, partial, blocked, superseded

    @property
    def would_load(self) -> bool:
        return self.outcome in ("loaded", "partial")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]  # a run's, for the same drop


def _fetch(server, key, district, into: Path):
    """The drop's files the district sends, as (name, bytes) by file asset, decrypted in memory: fetched from the
    drop server into a temporary staging folder (encrypted there), or read from the drop's staged copy when the
    server does not list it or cannot be reached, as a run replays it."""
    vault, source, transient = server.vault_key(), server.source(), (SftpTransient,)
    try:
        received = receive_or_replay(source, key.district, district.drop_folder, key.drop, into / "staging", vault,
                                     server.limits(), transient=transient)
    except LookupError:
        received = receive_or_replay(source, key.district, district.drop_folder, key.drop, server.staging(key),
                                     vault, server.limits(), transient=transient)
    try:
        files = {asset: tuple((f.name, read_staged(Path(received.folder), f, vault)) for f in staged)
                 for asset, staged in drop_files(district, received.files).items()}
    except VaultError as exc:  # a replayed copy is checked as it is read (read_staged)
        raise LookupError(f"the staged copy of drop {key} is unusable ({why_unreadable(received, exc)}); receive it "
                          "again") from None
    return received, files


def dry_run(settings: Settings, drop: str) -> DryRun:
    from .defs.resources import resources
    key = parse_drop_key(drop)
    out = DryRun(str(key))
    try:
        district = load_registry(settings.districts_dirs).entry(key.district)
    except RegistryError as exc:
        out.lines.append(f"DRY RUN: {key}: cannot run: {exc}")
        return out
    warehouse, prod = make_engine(settings.warehouse_url), make_engine(settings.prod_db_url)
    try:
        with tempfile.TemporaryDirectory(prefix="mtss-dry-run-") as tmp:
            server = resources(settings)["drop_server"]
            try:
                received, files = _fetch(server, key, district, Path(tmp))
            except (LookupError, DropRefused, SftpFatal, SftpTransient) as exc:
                out.lines.append(f"DRY RUN: {key}: cannot run: {getattr(exc, 'message', exc)}")
                return out
            account_info = read_account_info(warehouse, settings.account_info_table)
            users = read_classlink_students(prod, district.source_names.classlink, district.classlink_tenant_ids,
                                            settings.classlink_table)
            # what the asset graph reads from the warehouse, read here alike (defs/district.py, defs/students.py)
            accepted = gates.acceptances(warehouse, str(key), received.acceptance_keys)
            result = process_drop(files, district, users, account_info, str(key),
                                  ferpa_max_days=settings.ferpa_review_max_days,
                                  max_days_ahead=settings.max_days_ahead, limits=server.limits(),
                                  current_roster=gates.current_roster(warehouse, district.account_info_id),
                                  accepted=review.accepted(warehouse, district.account_info_id),
                                  other_ids=under_other_ids(warehouse, district.district,
                                                            district.account_info_id),
                                  accepted_checks=accepted)
        newer = ""
        if result.roster is not None or result.results is not None:
            newer = _replace_checks(warehouse, district, str(key), result, settings.max_days_ahead, accepted,
                                    received.acceptance_keys)
    except SourceTableError as exc:
        out.lines.append(f"DRY RUN: {key}: cannot run: {exc}")
        return out
    finally:
        warehouse.dispose()
        prod.dispose()
    out.lines += _render(key, received, result)
    out.outcome = _outcome(result, bool(newer))
    roster, results = _rows(result)
    newer = f"; superseded in part: {newer}" if newer else ""
    out.lines.append(f"DRY RUN: {key}: would load {roster:,} roster rows and {results:,} results{newer}; nothing "
                     "written" if out.would_load else f"DRY RUN: {key}: would load nothing: {result.stopped}; nothing "
                     "written")
    return out


def _replace_checks(engine, district, key: str, result: CoreResult, max_days_ahead: int,
                    accepted: dict[str, str], versions: tuple[str, ...]) -> str:
    """The replace checks again, against what the warehouse holds (process_drop judged them against nothing); a
    failure stops the load, as it stops a run's. What newer drops hold of the drop is left to them, as a run leaves
    it (defs/warehouse.py), unless drop_is_newest was accepted against those drops; returns what, if anything."""
    def accepted_against(figure: str) -> bool:  # as a run reads it (lib/students/gates.py `acceptance`)
        return gates.acceptance(engine, key, versions, "drop_is_newest", figure) is not None

    with engine.connect() as conn:
        holds = superseded_in_part(conn, district, key, result.roster, result.results, max_days_ahead)
        if holds.skipped and accepted_against(holds.newer):
            holds = NewerHolds(result.roster, result.results, results_scopes(result.results)
                               if result.results is not None else [])
        result.roster, result.results = holds.roster, holds.results
        judged = decide("replace", replace_evidence(
            conn, district, key, result.roster, result.results, holds.result_scopes, max_days_ahead))
    newest = next((o for o in judged if o.name == "drop_is_newest" and not o.passed), None)
    if newest is not None and not accepted_against(newest.figure):  # accepted against other drops: judged afresh
        accepted = {k: v for k, v in accepted.items() if k != "drop_is_newest"}
    outcomes = with_acceptances(judged, accepted)
    names = {o.name for o in outcomes}
    result.checks = [c for c in result.checks if c.name not in names] + outcomes
    failed = [o for o in outcomes if not o.passed]
    if failed:
        result.stopped = f"{failed[0].name}: {failed[0].why}"
        result.roster = result.results = None
        return ""
    return holds.note


def _outcome(result: CoreResult, superseded_in_part: bool = False) -> str:
    """What a run of the drop would end as, in the run report's words (report.py `DropReport.outcome`)."""
    failed = {c.name for c in result.checks if not c.passed}
    if failed:
        return stopped_as(failed)
    if (result.roster is None and not superseded_in_part) or result.stopped:
        return "failed"
    return "partial" if any(v.sent and v.halted for v in result.validated.values()) else "loaded"


def _rows(result: CoreResult) -> tuple[int, int]:
    return (0 if result.roster is None else result.roster.height,
            0 if result.results is None else result.results.height)


def _render(key, received, result: CoreResult) -> list[str]:
    lines = [f"Drop {key}, version {received.version} "
             f"({'its staged copy' if received.replayed else 'fetched from the drop server'}):"]
    lines.append("Rows per source:")
    for name, v in result.validated.items():
        if not v.sent:
            continue
        rejected = sum(v.rejected.values())
        state = f"halted: {v.halted.message}" if v.halted else f"{v.rows:,} rows" + (
            f" ({rejected:,} rejected)" if rejected else "")
        lines.append(f"  {name:<28} {state}")
    if result.identity is not None:
        cl, tests = result.identity.stats["classlink_email"], result.identity.stats["assessment_link"]
        lines.append(f"Links: {cl['match_rate']:.1%} of {cl['powerschool_students']:,} students to ClassLink; "
                     f"{tests['match_rate']:.1%} of {tests['rows']:,} assessment rows to a student")
    lines.append("Checks and gates:")
    for c in result.checks:
        found = "" if c.passed and c.why == "none" else f": {c.why}"  # a passed check with nothing to say
        lines.append(f"  {'passed' if c.passed else 'FAILED':<7} {c.name}{found}")
    roster, results = _rows(result)
    lines.append(f"Would write: dm.StudentRoster {roster:,} rows, dm.AssessmentResults {results:,} rows")
    return lines
