"""The stages of one drop as plain functions over polars frames, with their guards, and their one composition.

Each Dagster asset and check calls one of these stages (defs/); `process_drop` runs them all in the asset graph's
order, with the same guards and the same stops, for scripts and benchmarks. A stage that cannot go on raises
`Stop` (the run's one-line reason); a check returns a `CheckOutcome` whose failure blocks everything after it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import crosswalk as xw
from . import gates
from .catalog import BY_NAME, FILES, POWERSCHOOL, STAR_FILES, FileSource
from .csvfile import FileInfo
from .drops import Limits, find_file
from .errors import ErrorRecord
from .identity import IdentityMap, build_results, build_roster, link_problems, link_students
from .ingest import SourceFile, ValidatedFile, ingest_file, validate_classlink, validate_file
from .registry import District

CLASSLINK_EMPTY = {"classlink_user_id": pl.Utf8, "tenant_name": pl.Utf8, "email_key": pl.Utf8}


class Stop(Exception):
    """A stage whose guard refuses to go on; the message is the run's one-line reason."""


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    why: str  # one line: why it failed (or what it found)
    records: list[ErrorRecord] = field(default_factory=list)  # the error rows a failure writes


# ---- sources and validation ----------------------------------------------------------------------------------

def read(source: FileSource, path: Path | None, district: District, data: bytes | None = None,
         info: FileInfo | None = None, max_rows: int = Limits.max_file_rows) -> SourceFile:
    return ingest_file(source, path, district, data, info, max_rows)


def validate(src: SourceFile, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    return validate_file(src, district)


def classlink(users: pl.DataFrame, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    return validate_classlink(users, district)


# ---- the district ---------------------------------------------------------------------------------------------

def crosswalk(district: District, account_info: pl.DataFrame, validated: dict[str, ValidatedFile]) -> pl.DataFrame:
    return xw.build_crosswalk(district, account_info, validated[POWERSCHOOL.name], validated["classlink_users"],
                              [validated[f.name] for f in STAR_FILES])


def names_check(district: District, frame: pl.DataFrame) -> CheckOutcome:
    failing = frame.filter(~pl.col("verified"))
    records = [
        ErrorRecord(
            "district", "district_mismatch" if row["decision"] == "resolved" else f"district_{row['decision']}",
            f"{row['file_name']}: district name '{row['name_seen']}' "
            f"{'names another district' if row['decision'] == 'resolved' else 'is ' + row['decision']} "
            f"(best candidate {row['candidate']!s}, AccountInfoId {row['candidate_account_info_id']!s}, "
            f"score {row['score']!s}, margin {row['margin']!s}); the drop is registered to "
            f"AccountInfoId {district.account_info_id} ({district.display_name}, {district.state})",
            row["file_name"],
        )
        for row in failing.iter_rows(named=True)
    ]
    # short: the check's table and the run's summary give each file's candidates
    why = "; ".join(f"{r['file_name']} names '{r['name_seen']}' ({r['decision']}; best candidate "
                    f"{r['candidate']!s}, AccountInfoId {r['candidate_account_info_id']!s})"
                    for r in failing.iter_rows(named=True))
    return CheckOutcome("district_names_match_registry", not records, why or "every name resolves", records)


def account_info_check(district: District, account_info: pl.DataFrame) -> CheckOutcome:
    problems = xw.account_info_problems(district, account_info)
    return CheckOutcome("account_info_id_exists", not problems, "; ".join(problems) or "none",
                        [ErrorRecord("district", "account_info", p, "dm.AccountInfo") for p in problems])


def ferpa_check(district: District, today: dt.date, max_days: int) -> CheckOutcome:
    problem = xw.ferpa_review_problem(district, today, max_days)
    return CheckOutcome("ferpa_review_current", problem is None, problem or "none",
                        [ErrorRecord("district", "ferpa_review", problem)] if problem else [])


def district_checks(district: District, frame: pl.DataFrame, account_info: pl.DataFrame, today: dt.date,
                    ferpa_max_days: int) -> list[CheckOutcome]:
    """The drop's three blocking district checks, in the order they are shown."""
    return [names_check(district, frame), account_info_check(district, account_info),
            ferpa_check(district, today, ferpa_max_days)]


# What a person can do about each blocking check (shown, with the drop key, when it blocks a drop).
REMEDIES = {
    "district_names_match_registry": (
        "if these files are {district}'s, list the name under source_names in its registry entry and run the drop "
        "again; if they are another district's, ask the sender to put them in that district's folder"),
    "account_info_id_exists": ("correct account_info_id, nces_id or state in {district}'s registry entry, or ask "
                               "the warehouse team why dm.AccountInfo disagrees"),
    "ferpa_review_current": "record {district}'s current FERPA review date (verification.ferpa_review_on) in its "
                            "registry entry",
}
GATE_REMEDY = ("if the figure is right for this drop, accept it for this version: belleville-mtss run {key} "
               "--accept {gate} --reason TEXT; otherwise ask the district for a corrected drop")


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
    # a gate's reason already says what to do (gate_outcome)
    for name in dict.fromkeys(o.name for o in failed if o.name in REMEDIES):
        lines.append(f"Remedy ({name}): " + REMEDIES[name].format(district=district.display_name))
    return "\n".join(lines)


# ---- students -------------------------------------------------------------------------------------------------

def star_frames(stars: list[ValidatedFile]) -> dict[str, pl.DataFrame]:
    """The usable Star frames of the drop, by subject (none when every Star file was halted)."""
    return {BY_NAME[v.source].subject: v.frame for v in stars if v.usable}


def link(district: District, crosswalk_frame: pl.DataFrame, powerschool: ValidatedFile, users: ValidatedFile,
         stars: list[ValidatedFile]) -> tuple[IdentityMap, list[ErrorRecord]]:
    # The blocking checks stop this stage in a run; the guard holds for a caller that runs it alone.
    if not crosswalk_frame["verified"].all():
        raise Stop("district identifiers of this drop are not verified; see the district_crosswalk checks")
    if not powerschool.usable:
        raise Stop(f"{powerschool.file_name or 'the PowerSchool export'} was halted "
                   f"({powerschool.halted.reason if powerschool.halted else 'missing'}): students cannot be linked "
                   "without it, nothing is loaded")
    cl = users.frame if users.usable else pl.DataFrame(schema=CLASSLINK_EMPTY)
    identity = link_students(powerschool.frame, cl, star_frames(stars))
    identity.files = {f.subject: (v.file_name, v.rows_in_file)
                      for f, v in zip(STAR_FILES, stars) if v.file_name and not v.halted}
    names = {subject: name for subject, (name, _rows) in identity.files.items()}
    return identity, link_problems(identity, powerschool.file_name, names, district.student_link.renaissance)


def gate(name: str, district: District, identity: IdentityMap, current_roster: int) -> gates.GateResult:
    """One gate (lib/gates.py) on the drop's links; `current_roster`: the district's roster now in the warehouse."""
    return {
        "classlink_link_rate": lambda: gates.classlink_link_rate(district, identity),
        "star_link_rate": lambda: gates.star_link_rate(district, identity),
        "roster_size": lambda: gates.roster_size(district, identity, current_roster),
        "star_files_linked": lambda: gates.star_files_linked(identity),
    }[name]()


def gate_outcome(result: gates.GateResult, drop_key: str) -> CheckOutcome:
    message = f"{result.message}; {GATE_REMEDY.format(key=drop_key, gate=result.gate)}"
    return CheckOutcome(result.gate, result.passed, message if not result.passed else result.figure,
                        [] if result.passed else [ErrorRecord("gate", result.gate, message)])


def roster(district: District, powerschool: ValidatedFile, identity: IdentityMap, drop_key: str,
           loaded_at: dt.datetime) -> pl.DataFrame:
    return build_roster(powerschool.frame, identity.frame, district.account_info_id, drop_key, loaded_at)


def results(district: District, stars: list[ValidatedFile], identity: IdentityMap, drop_key: str,
            loaded_at: dt.datetime) -> tuple[pl.DataFrame, int]:
    return build_results(star_frames(stars), identity.frame, district.account_info_id, drop_key, loaded_at)


LOAD_CHECKS = {
    "rows_written_match_frame": "What the load replaced (the district's roster; each subject and school year of "
                                "its results) holds exactly the rows of the frame it loaded",
    "no_duplicate_keys": "No key of the district is held twice in the table",
    "account_info_id_stamped": "Every row this drop loaded carries the registry's AccountInfoId",
}


def load_checks(table: str, frame_rows: int, figures: dict[str, int], account_info_id: int) -> list[CheckOutcome]:
    """The checks of one warehouse load, from what the table holds afterwards (lib/warehouse.load_figures)."""
    found = [
        ("rows_written_match_frame", figures["rows"] == frame_rows,
         f"{table} holds {figures['rows']} row(s) where this drop's load replaced the district's; the frame had "
         f"{frame_rows}"),
        ("no_duplicate_keys", figures["duplicate_keys"] == 0,
         f"{figures['duplicate_keys']} key(s) of AccountInfoId {account_info_id} held more than once in {table}"),
        ("account_info_id_stamped", figures["other_account_rows"] == 0,
         f"{figures['other_account_rows']} row(s) of this drop in {table} not stamped with AccountInfoId "
         f"{account_info_id}"),
    ]
    return [CheckOutcome(name, passed, why, [] if passed else [ErrorRecord("warehouse", name, why, table)])
            for name, passed, why in found]


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

    @property
    def verified(self) -> bool:
        return bool(self.crosswalk["verified"].all())


def files_in(folder: Path, district: District) -> dict[str, Path | None]:
    """Each catalogued source's file in a drop folder, by the district's patterns."""
    present = tuple(p for p in folder.iterdir() if p.is_file())
    return {f.name: find_file(present, district.files[f.name]) for f in FILES}


def process_drop(files: dict[str, Path | None], district: District, classlink_users: pl.DataFrame,
                 account_info: pl.DataFrame, drop_key: str, *, today: dt.date | None = None,
                 ferpa_max_days: int = 365, current_roster: int = 0, limits: Limits = Limits(),
                 loaded_at: dt.datetime | None = None) -> CoreResult:
    """Every stage of one drop, in the asset graph's order, with its guards: what the warehouse would receive
    (roster and results), or why nothing (a failed check or a stop), and every error row on the way."""
    today, loaded_at = today or dt.date.today(), loaded_at or dt.datetime.now()
    errors: list[ErrorRecord] = []
    validated: dict[str, ValidatedFile] = {}
    for source in FILES:
        path = files.get(source.name)
        # checksums are taken when a drop is received; the core does not hash again
        info = FileInfo(path.name, str(path), path.stat().st_size, "") if path else None
        src = read(source, path, district, info=info, max_rows=limits.max_file_rows)
        if src.halted:
            errors.append(src.halted)
        validated[source.name], found = validate(src, district)
        errors += found
    validated["classlink_users"], found = classlink(classlink_users, district)
    errors += found
    frame = crosswalk(district, account_info, validated)
    result = CoreResult(validated, errors, [], frame)
    if not _judge(result, district_checks(district, frame, account_info, today, ferpa_max_days)):
        return result
    stars = [validated[f.name] for f in STAR_FILES]
    try:
        identity, found = link(district, frame, validated[POWERSCHOOL.name], validated["classlink_users"], stars)
    except Stop as exc:
        result.stopped = str(exc)
        return result
    errors += found
    result.identity = identity
    gate_results = [gate(name, district, identity, current_roster) for name in gates.GATES]
    if not _judge(result, [gate_outcome(g, drop_key) for g in gate_results]):
        return result
    result.roster = roster(district, validated[POWERSCHOOL.name], identity, drop_key, loaded_at)
    result.results, _duplicates = results(district, stars, identity, drop_key, loaded_at)
    return result


def _judge(result: CoreResult, checks: list[CheckOutcome]) -> bool:
    """Blocking checks: their error rows are written, and a failure stops everything after them."""
    result.checks += checks
    result.errors += [r for c in checks for r in c.records]
    failed = [c for c in checks if not c.passed]
    if failed:
        result.stopped = f"{failed[0].name}: {failed[0].why}"
    return not failed
