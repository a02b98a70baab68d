"""The stages of one drop as plain functions over polars frames, with their guards, and their one composition.

Each Dagster asset and check calls one of these stages (defs/); `process_drop` runs them all in the asset graph's
order, with the same guards and the same stops, for scripts and benchmarks. A stage that cannot go on raises
`Stop` (the run's one-line reason); the checks of a stage (lib/checks.py) return `CheckOutcome`s whose failure
blocks everything after them.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from .district import crosswalk as xw
from .checks import CATALOGUE, CheckOutcome, Evidence, decide, newer_figure
from .read.csvfile import FileInfo
from .receive.drops import Limits
from .sources import ASSESSMENT_FILES, BY_NAME, FILES, SOURCE_OF, Source, common_results
from .load import order
from .load.errors import ErrorRecord
from .load.warehouse import SCOPE, now, results_scopes, scope_term
from .students.identity import (CLASSLINK_ON, IdentityMap, build_results, build_roster, link_problems, link_students,
                                rows_by_source)
from .students.suggest import (SUGGESTION_COLUMNS, apply_accepted, claimed_twice, classlink_suggestions, people,
                               powerschool_candidates, suggest, unknown_cause, unknown_ids)
from .read.ingest import (ValidatedFile, drop_files, ingest_file, readers, reading_order, validate_classlink,
                          validate_file)
from .district.registry import District

CLASSLINK_EMPTY = {"classlink_user_id": pl.Utf8, "tenant_name": pl.Utf8, "email_key": pl.Utf8, "sourced_id": pl.Utf8}


class Stop(Exception):
    """A stage whose guard refuses to go on; the message is the run's one-line reason."""


# ---- the district ---------------------------------------------------------------------------------------------

def crosswalk(district: District, account_info: pl.DataFrame, validated: dict[str, ValidatedFile]) -> pl.DataFrame:
    """Every file of the drop the district sends (and the ClassLink tenant), its district resolved."""
    return xw.build_crosswalk(district, account_info, [v for v in validated.values() if v.sent])


def blocked_summary(district: District, drop_key: str, failed: list[CheckOutcome],
                    crosswalk_frame: pl.DataFrame | None = None) -> str:
    """Why a drop is blocked, in a few plain lines: each file whose name is not the district's (the name seen and
    the best candidate), the registered district, and what to do. No student data: names of districts only."""
    lines = [f"Blocked: drop {drop_key} is registered to {district.display_name} ({district.state}, AccountInfoId "
             f"{district.account_info_id}); nothing was written to the warehouse."]
    for outcome in failed:
        if outcome.name == "district_names_match_registry" and crosswalk_frame is not None:
            for row in crosswalk_frame.filter(~pl.col("verified")).iter_rows(named=True):
                best = (f"best candidate '{row['candidate']}' (AccountInfoId {row['candidate_account_info_id']}, "
                        f"score {row['score']:.1f})" if row["candidate"] else "no candidate in dm.AccountInfo")
                lines.append(f"- {row['file_name']}: names '{row['name_seen']}', {row['decision']}; {best}")
        else:
            lines.append(f"- {outcome.name}: {outcome.why}")
    # a gate's reason already says what to do (checks._gate)
    for name in dict.fromkeys(o.name for o in failed if CATALOGUE[o.name].stage == "district"):
        lines.append(f"Remedy ({name}): " + CATALOGUE[name].remedy_for(district, drop_key))
    return "\n".join(lines)


# ---- students -------------------------------------------------------------------------------------------------

def roster_of(district: District, validated: dict[str, ValidatedFile]) -> ValidatedFile:
    """The district's roster among a drop's validated files, by file asset (its registry's roster source's)."""
    return validated[district.roster_kind.asset]


def tests_of(assessments: list[ValidatedFile]) -> dict[str, pl.DataFrame]:
    """The usable assessment files of the drop as common results (lib/sources/base.py), by file asset."""
    return {v.source: common_results(SOURCE_OF[v.source], v.frame) for v in assessments if v.usable}


def link(district: District, crosswalk_frame: pl.DataFrame, students: ValidatedFile, users: ValidatedFile,
         assessments: list[ValidatedFile], accepted: pl.DataFrame | None = None
         ) -> tuple[IdentityMap, list[ErrorRecord]]:
    """Each assessment file linked to the roster by its source's link column. `accepted`: the links a person
    accepted for the district (lib/students/review.py), applied before linking."""
    # The blocking checks stop this stage in a run; the guard holds for a caller that runs it alone.
    if not crosswalk_frame["verified"].all():
        raise Stop("district identifiers of this drop are not verified; see the district_crosswalk checks")
    if not students.usable:
        raise Stop(f"{students.file_name or 'the ' + district.roster_source.title + ' export'} was halted "
                   f"({students.halted.reason if students.halted else 'missing'}): students cannot be linked "
                   "without it, nothing is loaded")
    cl = users.frame if users.usable else pl.DataFrame(schema=CLASSLINK_EMPTY)
    on = CLASSLINK_ON[district.student_link.classlink]
    as_sent = tests_of(assessments)
    tests, roster_frame = apply_accepted(as_sent, students.frame, cl, accepted, on)
    identity = link_students(roster_frame, cl, tests, on)
    identity.accepted = accepted
    for asset, n in claimed_twice(as_sent, roster_frame, accepted).items():
        identity.by_file[asset]["accepted_link_now_a_student"] = n
    by_source = rows_by_source(identity)
    for name in district.assessments:  # each source's own figures beside the totals (the run report shows them)
        rows, linked = by_source.get(name, (0, 0))
        identity.stats[f"{name}_link"] = {"rows": rows, "linked_rows": linked,
                                          "match_rate": round(linked / rows, 4) if rows else 0.0}
    identity.files = {v.source: (v.file_name, v.to_link) for v in assessments if v.file_name and not v.halted}
    names = {asset: name for asset, (name, _rows) in identity.files.items()}
    links = {a: (SOURCE_OF[a].title, district.sources[SOURCE_OF[a].name].link) for a in identity.by_file}
    return identity, link_problems(identity, students.file_name, names, links, district.roster_source.title)


def roster(district: District, students: ValidatedFile, identity: IdentityMap, drop_key: str,
           loaded_at: dt.datetime) -> pl.DataFrame:
    return build_roster(students.frame, identity.frame, district.account_info_id, drop_key, loaded_at)


def results(district: District, assessments: list[ValidatedFile], identity: IdentityMap, drop_key: str,
            loaded_at: dt.datetime) -> tuple[pl.DataFrame, int]:
    # the accepted links again: a row of an accepted identifier loads under its student's number
    tests, _ = apply_accepted(tests_of(assessments), identity.frame, pl.DataFrame(schema=CLASSLINK_EMPTY),
                              getattr(identity, "accepted", None))
    return build_results(tests, identity.frame, district.account_info_id, drop_key, loaded_at)


def suggestions(district: District, identity: IdentityMap, students: ValidatedFile, users: ValidatedFile,
                assessments: list[ValidatedFile], raw: Callable[[Source], list[pl.DataFrame]]) -> pl.DataFrame:
    """Suggested counterparts of the drop's unlinked students (lib/students/suggest.py): each source's identifiers
    that link to no student, from its files' identifying columns (`raw(source)`, read again only for a source with
    such identifiers and `person` columns to score), against the drop's students; students with no ClassLink user
    against the tenant's users no student has."""
    linked = identity.frame["student_link"].drop_nulls()
    tests, _ = apply_accepted(tests_of(assessments), identity.frame, pl.DataFrame(schema=CLASSLINK_EMPTY),
                              getattr(identity, "accepted", None))
    parts = []
    candidates = None
    for name, unknown in unknown_ids(tests, linked).items():
        source = BY_NAME[name]
        if not source.person:
            continue  # its files say nothing of the student but the number: nothing to score a suggestion on
        candidates = powerschool_candidates(students.frame) if candidates is None else candidates
        parts.append(suggest(people(raw(source), source, district.sources[name].link, unknown), candidates,
                             unknown_cause(name)))
    if users.usable:
        # not a student whose address two students or two users share: an accepted user would give it the same key
        unlinked = identity.frame.filter(pl.col("classlink_link") == "not_in_classlink").select("student_number").join(
            students.frame.select("student_number", "email"), on="student_number")
        taken = identity.frame["classlink_user_id"].drop_nulls()
        # a user an accepted pair could never link: no key (its address, or its sourcedId where the district links
        # by that), or one another user carries too (accepted, the student would be ambiguous, still unlinked)
        on = CLASSLINK_ON[district.student_link.classlink]
        free = users.frame.filter(pl.col(on).is_not_null() & (pl.len().over(on) == 1)
                                  & ~pl.col("classlink_user_id").is_in(taken.implode()))
        parts.append(classlink_suggestions(unlinked, free))
    return pl.concat(parts) if parts else pl.DataFrame(schema=SUGGESTION_COLUMNS)


# ---- the one composition ---------------------------------------------------------------------------------------

@dataclass
class CoreResult:
    validated: dict[str, ValidatedFile]
    errors: list[ErrorRecord]
    checks: list[CheckOutcome]
    crosswalk: pl.DataFrame
    identity: IdentityMap | None = None
    roster: pl.DataFrame | None = None
    results: pl.DataFrame | None = None
    stopped: str | None = None  # why nothing was loaded
    seconds: dict[str, float] = field(default_factory=dict)  # each stage's wall seconds (Laps), in order

    @property
    def verified(self) -> bool:
        return bool(self.crosswalk["verified"].all())


class Laps(dict):
    """Each stage's wall seconds, counted from the end of the stage before: where a drop's time goes."""

    def __init__(self) -> None:
        super().__init__()
        self._since = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self[stage], self._since = now - self._since, now


def files_in(folder: Path, district: District) -> dict[str, tuple[Path, ...]]:
    """Each file the district sends, found in a drop folder by its pattern (with its companions: `drop_files`)."""
    return drop_files(district, tuple(p for p in folder.iterdir() if p.is_file()))


def read_files(files: dict[str, tuple], district: District, limits: Limits = Limits()
               ) -> tuple[dict[str, ValidatedFile], list[ErrorRecord]]:
    """Every file of the drop read and validated by its source (`files`: file asset -> the files it is read from,
    paths or (name, bytes) pairs, first its own then its companions: () when the drop lacks it); a file the
    district does not send is not sent. The files are read at the same time (polars works outside the GIL); the
    errors come in FILES order, as one after another would give them."""
    def one(kind) -> tuple[ValidatedFile, list[ErrorRecord]]:
        found, started = files.get(kind.asset) or (), time.perf_counter()
        if found and isinstance(found[0], tuple):  # (name, bytes): in memory, checksums taken when received
            (name, data), *rest = found
            src = ingest_file(kind, Path(name), district, data, FileInfo(name, name, len(data), ""),
                              limits.max_file_rows, {n: (Path(n), d) for n, d in rest})
        else:
            # checksums are taken when a drop is received; the core does not hash again
            first = found[0] if found else None
            info = FileInfo(first.name, str(first), first.stat().st_size, "") if first else None
            src = ingest_file(kind, first, district, info=info, max_rows=limits.max_file_rows,
                              companions={p.name: (p, None) for p in found[1:]})
        parsed = time.perf_counter()
        validated, found_errors = validate_file(src, district)
        validated.seconds = {"parse": parsed - started, "type": time.perf_counter() - parsed}
        return validated, ([src.halted] if src.halted else []) + found_errors

    order = reading_order({k: sum(len(f[1]) if isinstance(f, tuple) else f.stat().st_size
                                  for f in files.get(k.asset) or ()) for k in FILES})
    with readers(sum(bool(files.get(k.asset)) for k in FILES), "mtss-read") as pool:
        done = dict(zip(order, pool.map(one, order)))
    return {k.asset: done[k][0] for k in FILES}, [e for k in FILES for e in done[k][1]]


def process_drop(files: dict[str, tuple], district: District, classlink_users: pl.DataFrame,
                 account_info: pl.DataFrame, drop_key: str, *, today: dt.date | None = None,
                 ferpa_max_days: int = 365, max_days_ahead: int = 2, current_roster: int = 0,
                 limits: Limits = Limits(),
                 loaded_at: dt.datetime | None = None, accepted: pl.DataFrame | None = None,
                 other_ids: dict[int, int] | None = None, accepted_checks: Mapping[str, str] | None = None
                 ) -> CoreResult:
    """Every stage of one drop, in the asset graph's order, with its guards: what the warehouse would receive
    (roster and results), or why nothing (a failed check or a stop), and every error row on the way. What the
    asset graph reads from the warehouse comes as arguments: the links a person accepted (`accepted`), the
    district's rows held under another AccountInfoId (`other_ids`), its current roster's size, the checks a person
    accepted for this drop version (`accepted_checks`: check -> who)."""
    today, loaded_at, lap = today or dt.date.today(), loaded_at or now(), Laps()  # UTC, as stored
    validated, errors = read_files(files, district, limits)
    lap("read")
    validated["classlink_users"], found = validate_classlink(classlink_users, district)
    errors += found
    lap("classlink")
    frame = crosswalk(district, account_info, validated)
    result = CoreResult(validated, errors, [], frame, seconds=lap)
    evidence = Evidence(district, drop_key, crosswalk=frame, account_info=account_info, today=today,
                        ferpa_max_days=ferpa_max_days, max_days_ahead=max_days_ahead, other_ids=other_ids or {})
    if not _judge(result, decide("district", evidence), accepted_checks):
        return result
    lap("district")
    assessments = [validated[k.asset] for k in ASSESSMENT_FILES]
    try:
        identity, found = link(district, frame, roster_of(district, validated), validated["classlink_users"],
                               assessments, accepted)
    except Stop as exc:
        result.stopped = str(exc)
        return result
    errors += found
    result.identity = identity
    lap("link")
    evidence.identity, evidence.current_roster = identity, current_roster
    if not _judge(result, decide("gate", evidence), accepted_checks):
        return result
    lap("gate")
    result.roster = roster(district, roster_of(district, validated), identity, drop_key, loaded_at)
    result.results, _duplicates = results(district, assessments, identity, drop_key, loaded_at)
    lap("build")
    # The replace checks, against a warehouse that holds nothing of the district (the core writes nowhere).
    evidence.snapshot = order.snapshot_date(drop_key, district.drop_date, None)
    evidence.roster_numbers = result.roster["StudentNumber"]
    evidence.results_rows = order.rows_per_scope(result.results)
    if not _judge(result, decide("replace", evidence), accepted_checks):
        result.roster = result.results = None
    lap("replace")
    return result


def made_under_another_id(district: District, crosswalk: pl.DataFrame, *frames: pl.DataFrame | None) -> str | None:
    """Why a drop's frames may not load under the registry's AccountInfoId (None: they may): the crosswalk verified
    them for another one, or they are stamped with another. Frames kept by an earlier run outlive a registry edit;
    the district checks decided on the AccountInfoId of their time."""
    ids = set(crosswalk.filter(pl.col("verified"))["candidate_account_info_id"].drop_nulls().to_list())
    for frame in frames:
        if frame is not None and frame.height:
            ids |= set(frame["AccountInfoId"].unique().to_list())
    others = sorted(i for i in ids if i != district.account_info_id)
    if not others:
        return None
    return (f"{district.district}: the drop's frames were verified or stamped under AccountInfoId "
            f"{', '.join(map(str, others))}, and the registry now says {district.account_info_id}: nothing was "
            "written; materialize the whole drop again, so that its district checks decide on the registry's")


def read_under_another_entry(district: District, crosswalk: pl.DataFrame) -> str | None:
    """Why a drop's frames may not load under the registry entry (None: they may): the crosswalk judged a file of a
    source the entry no longer lists. Frames kept by an earlier run outlive a registry edit; a load run alone reads
    no frame of a file, which is where the steps before it refuse them."""
    gone = crosswalk.filter(~pl.col("source").is_in([*district.file_patterns, "classlink_users"]))
    unlisted = sorted(set(gone.select(pl.coalesce("file_name", pl.col("source") + " (no file)")).to_series()))
    if not unlisted:
        return None
    return (f"{district.district}: {', '.join(unlisted)} was read under a registry entry that listed its source, and "
            f"the entry no longer does: nothing was written; materialize the whole drop again")


def _place(conn, district: District, key: str, roster: pl.DataFrame | None, results: pl.DataFrame | None,
           result_scopes: list, max_days_ahead: int) -> tuple[dt.date | None, dict, list]:
    """The drop's place in its district's order: its date, what the warehouse holds, and what of the load's scopes
    (those it would take tests from among them) a newer drop holds."""
    load_scopes = order.scopes(roster.height if roster is not None else 0, result_scopes)
    received = order.first_receipts(conn, {key}).get(key)
    snapshot = order.snapshot_date(key, district.drop_date, received)
    holding = order.held(conn, district.account_info_id, district.drop_date)
    load_scopes += order.taken_from(conn, district.account_info_id, results, result_scopes, holding, snapshot, key,
                                    max_days_ahead, received)  # what the load would take from other terms or years
    return snapshot, holding, order.newer(snapshot, key, load_scopes, holding, max_days_ahead=max_days_ahead,
                                          received=received)


def replace_evidence(conn, district: District, key: str, roster: pl.DataFrame | None,
                     results: pl.DataFrame | None, result_scopes: list, max_days_ahead: int = 2,
                     receipt: dict[str, str] | None = None) -> Evidence:
    """What the replace checks decide on, read from the warehouse (inside the load's transaction, or read-only for
    a dry run): the drop's place in its district's order, what the warehouse holds, the current roster, and bytes
    of the drop received after `receipt` (the files loaded: name -> SHA-256)."""
    from .load.warehouse import current_numbers, later_receipt
    snapshot, holding, newer = _place(conn, district, key, roster, results, result_scopes, max_days_ahead)
    return Evidence(district, key, snapshot=snapshot, newer=newer,
                    later_receipt=later_receipt(conn, key, receipt) if receipt else "",
                    holding=holding, results_rows=order.rows_per_scope(results),
                    current_numbers=set() if roster is None else current_numbers(conn, district.account_info_id),
                    roster_numbers=roster["StudentNumber"] if roster is not None else None)


@dataclass
class NewerHolds:
    """What a load keeps of a drop that a newer drop supersedes in part (`superseded_in_part`)."""
    roster: pl.DataFrame | None
    results: pl.DataFrame | None
    result_scopes: list
    skipped: list[str] = field(default_factory=list)  # the scopes left to the newer drops ("roster", "star SR ...")
    why: str = ""  # which newer drop holds which of them
    newer: str = ""  # those drops, as drop_is_newest's figure names them (checks.newer_figure)

    @property
    def note(self) -> str:
        return f"{', '.join(self.skipped)} left to newer drops ({self.why})" if self.skipped else ""


def superseded_in_part(conn, district: District, key: str, roster: pl.DataFrame | None,
                       results: pl.DataFrame | None, max_days_ahead: int = 2) -> NewerHolds:
    """The drop less what newer drops hold, where they hold some of what it would replace but not all: a drop run
    after a newer one (its run killed and replayed, a backfill) still brings the terms and years no later drop holds
    (a MAP Growth Fall term, last year's tests), which were refused with the rest and lost. A results scope is left
    whole to a newer drop that holds it, and so is every scope of an assessment whose tests a newer drop holds under
    another subject, term or year (the load would take them back). Nothing kept: the drop as it is, for the
    drop_is_newest check to refuse."""
    scopes = results_scopes(results) if results is not None else []
    unchanged = NewerHolds(roster, results, scopes)
    kept, keeps_roster, left = scopes, roster is not None, {}
    while True:  # what is kept is judged again: a scope kept may take tests from one another drop holds
        held_newer = _place(conn, district, key, roster if keeps_roster else None,
                            results if kept is scopes else _in(results, kept), kept, max_days_ahead)[2]
        if not held_newer:
            break
        left.update({h.scope: h for h in held_newer})
        own = {order.label(*s) for s in kept}
        taken_back = {h.parts[0] for h in held_newer if h.parts is not None and h.scope not in own}
        kept = [s for s in kept if order.label(*s) not in left and s[0] not in taken_back]
        keeps_roster = keeps_roster and order.ROSTER not in left
        if not kept and not keeps_roster:
            return unchanged
    if not left:
        return unchanged
    by_drop: dict[str, list[str]] = {}
    for h in left.values():
        by_drop.setdefault(h.drop_key, []).append(h.scope)
    skipped = sorted(({order.ROSTER} if roster is not None and not keeps_roster else set())
                     | {order.label(*s) for s in scopes if s not in kept})
    why = "; ".join(f"the newer {drop} holds {', '.join(held)}" for drop, held in by_drop.items())
    return NewerHolds(roster if keeps_roster else None, _in(results, kept) if kept else None, kept, skipped, why,
                      newer_figure(by_drop))


def _in(results: pl.DataFrame | None, scopes: list) -> pl.DataFrame | None:
    """The results rows of `scopes` (results_scopes' tuples)."""
    if results is None:
        return None
    scope = pl.struct(*SCOPE[:3], scope_term(results).alias(SCOPE[3]))
    wanted = pl.Series([dict(zip(SCOPE, s)) for s in scopes], dtype=results.select(scope).to_series().dtype)
    return results.filter(scope.is_in(wanted.implode()))


def with_acceptances(checks: list[CheckOutcome], accepted: Mapping[str, str]) -> list[CheckOutcome]:
    """A failed check a person accepted for this drop version (`accepted`: check -> who, dm.GateAcceptances) passes,
    as a run passes it, saying who accepted it; it writes no error row."""
    return [replace(c, passed=True, why=f"accepted by {accepted[c.name]}: {c.why}", records=[])
            if not c.passed and c.name in accepted else c for c in checks]


def _judge(result: CoreResult, checks: list[CheckOutcome], accepted: Mapping[str, str] | None = None) -> bool:
    """Blocking checks: their error rows are written, and a failure stops everything after them (unless accepted)."""
    checks = with_acceptances(checks, accepted or {})
    result.checks += checks
    result.errors += [r for c in checks for r in c.records]
    failed = [c for c in checks if not c.passed]
    if failed:
        result.stopped = f"{failed[0].name}: {failed[0].why}"
    return not failed
