"""The check catalogue: every blocking district check, gate and load check, declared once.

An entry is its decision function, registered with `@check(...)`: the name, the stage it runs at (which gives the
asset it is a check of), a description, what a person can do when it fails, and whether a person may accept a
failure for one drop version. The Dagster check specs (defs/), the composition (lib/pipeline.py), the run report's
reasons, the blocked summary, `belleville-mtss run --accept`, `belleville-mtss checks` and docs/operations.md's table
all derive from `CATALOGUE`. Adding a check is one decorated function here (README, "Adding a check").

A decision function takes the stage's `Evidence` and returns a `CheckOutcome` whose `why` is its one reason.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from .district import crosswalk as xw
from .load.errors import ErrorRecord
from .students.identity import IdentityMap
from .district.registry import District

Stage = Literal["district", "gate", "load"]
# The asset(s) a check of each stage belongs to; a check of an earlier stage blocks everything after it.
STAGE_ASSETS: dict[str, tuple[str, ...]] = {
    "district": ("district_crosswalk",),
    "gate": ("student_identity_map",),
    "load": ("dm_student_roster", "dm_assessment_results"),
}
# The stage of each check's error rows in dm.IngestionErrors.
ERROR_STAGE = {"district": "district", "gate": "gate", "load": "warehouse"}
ACCEPT_REMEDY = ("if the figure is right for this drop, accept it for this version: belleville-mtss run {key} "
                 "--accept {name} --reason TEXT; otherwise ask the district for a corrected drop")


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    why: str  # the one reason: why it failed (or what it found)
    records: list[ErrorRecord] = field(default_factory=list)  # the error rows a failure writes
    figure: str = ""  # a gate's measured figure, and the threshold it was held to
    threshold: str = ""


@dataclass
class Evidence:
    """What the checks of a stage decide on; each stage fills its own fields."""
    district: District | None = None
    drop_key: str = ""
    account_info_id: int = 0  # the registry's, stamped on every row (the load stage has no entry to hand)
    crosswalk: pl.DataFrame | None = None  # district stage
    account_info: pl.DataFrame | None = None
    today: dt.date | None = None
    ferpa_max_days: int = 365
    identity: IdentityMap | None = None  # gate stage
    current_roster: int = 0  # the district's roster now in dm.StudentRoster
    table: str = ""  # load stage: the table loaded, the frame's rows, what the table holds afterwards
    frame_rows: int = 0
    figures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    stage: Stage
    description: str
    remedy: str  # {district}: the registry's display name; {key}: the drop; {name}: the check
    acceptable: bool  # a person may accept a failure for one drop version (run --accept)
    decide: Callable[[Evidence], CheckOutcome]

    @property
    def assets(self) -> tuple[str, ...]:
        return STAGE_ASSETS[self.stage]

    def remedy_for(self, district: District, key: str) -> str:
        return self.remedy.format(district=district.display_name, key=key, name=self.name)


CATALOGUE: dict[str, Check] = {}


def check(name: str, stage: Stage, description: str, remedy: str | None = None):
    """Registers a decision function as the check `name`. Gates are acceptable, with the acceptance remedy."""
    def register(decide: Callable[[Evidence], CheckOutcome]) -> Callable[[Evidence], CheckOutcome]:
        if name in CATALOGUE:
            raise ValueError(f"check {name} is declared twice")
        CATALOGUE[name] = Check(name, stage, description, remedy or ACCEPT_REMEDY, stage == "gate", decide)
        return decide
    return register


def of_stage(stage: Stage) -> list[Check]:
    return [c for c in CATALOGUE.values() if c.stage == stage]


def acceptable() -> list[str]:
    return sorted(c.name for c in CATALOGUE.values() if c.acceptable)


def decide(stage: Stage, evidence: Evidence) -> list[CheckOutcome]:
    """Every check of the stage, in the catalogue's order."""
    return [c.decide(evidence) for c in of_stage(stage)]


def _outcome(ev: Evidence, name: str, passed: bool, why: str, file: str | None = None,
             reason: str | None = None) -> CheckOutcome:
    stage = CATALOGUE[name].stage
    return CheckOutcome(name, passed, why, [] if passed else [ErrorRecord(ERROR_STAGE[stage], reason or name, why,
                                                                          file)])


def _gate(ev: Evidence, name: str, passed: bool, figure: str, threshold: str) -> CheckOutcome:
    """A gate's outcome: its figure when it passes; figure, threshold and remedy when it fails."""
    message = f"gate {name}: {figure}; {threshold}; {CATALOGUE[name].remedy_for(ev.district, ev.drop_key)}"
    outcome = _outcome(ev, name, passed, figure if passed else message)
    outcome.figure, outcome.threshold = figure, threshold
    return outcome


def _pct(x: float) -> str:
    return f"{x:.2%}"


# ---- district: the drop is verifiably the registry's district -------------------------------------------------

@check("district_names_match_registry", "district",
       "Every district name in the drop is the registry's district (listed, or resolved to its AccountInfoId)",
       "if these files are {district}'s, list the name under source_names in its registry entry and run the drop "
       "again; if they are another district's, ask the sender to put them in that district's folder")
def names_match_registry(ev: Evidence) -> CheckOutcome:
    district, failing = ev.district, ev.crosswalk.filter(~pl.col("verified"))
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


@check("account_info_id_exists", "district",
       "The registry's AccountInfoId exists in dm.AccountInfo with the registry's NcesId and state",
       "correct account_info_id, nces_id or state in {district}'s registry entry, or ask the warehouse team why "
       "dm.AccountInfo disagrees")
def account_info_id_exists(ev: Evidence) -> CheckOutcome:
    problems = xw.account_info_problems(ev.district, ev.account_info)
    return CheckOutcome("account_info_id_exists", not problems, "; ".join(problems) or "none",
                        [ErrorRecord("district", "account_info", p, "dm.AccountInfo") for p in problems])


@check("ferpa_review_current", "district",
       "The district's FERPA review of the identifiers used is recorded and recent enough",
       "record {district}'s current FERPA review date (verification.ferpa_review_on) in its registry entry")
def ferpa_review_current(ev: Evidence) -> CheckOutcome:
    problem = xw.ferpa_review_problem(ev.district, ev.today or dt.date.today(), ev.ferpa_max_days)
    return _outcome(ev, "ferpa_review_current", problem is None, problem or "none", reason="ferpa_review")


# ---- gates: what a drop must show before it may replace the district's data (thresholds: registry.Gates) --------

@check("classlink_link_rate", "gate", "Gate: enough students linked to a ClassLink user (thresholds: the "
       "registry's gates)")
def classlink_link_rate(ev: Evidence) -> CheckOutcome:
    cl, floor = ev.identity.stats["classlink_email"], ev.district.gates.min_classlink_link_rate
    return _gate(ev, "classlink_link_rate", cl["match_rate"] >= floor,
                 f"{_pct(cl['match_rate'])} of {cl['powerschool_students']:,} students linked to ClassLink",
                 f"at least {_pct(floor)} required (gates.min_classlink_link_rate)")


@check("star_link_rate", "gate", "Gate: enough Star rows linked to a student (thresholds: the registry's gates)")
def star_link_rate(ev: Evidence) -> CheckOutcome:
    ren, floor = ev.identity.stats["renaissance_link"], ev.district.gates.min_star_link_rate
    rate = ren["match_rate"] if ren["star_rows"] else 1.0  # no Star row at all: nothing to link (halted files say why)
    return _gate(ev, "star_link_rate", rate >= floor,
                 f"{_pct(rate)} of {ren['star_rows']:,} Star rows linked to a student",
                 f"at least {_pct(floor)} required (gates.min_star_link_rate)")


@check("roster_size", "gate", "Gate: the new roster close to the district's roster in dm.StudentRoster "
       "(thresholds: the registry's gates)")
def roster_size(ev: Evidence) -> CheckOutcome:
    new, current, limit = ev.identity.frame.height, ev.current_roster, ev.district.gates.max_roster_change
    if current == 0:
        return _gate(ev, "roster_size", True, f"{new:,} students; no roster loaded yet", "a first roster is exempt")
    change = (new - current) / current
    return _gate(ev, "roster_size", abs(change) <= limit,
                 f"{new:,} students against {current:,} now in dm.StudentRoster ({change:+.1%})",
                 f"within {_pct(limit)} required (gates.max_roster_change)")


@check("star_files_linked", "gate", "Gate: no Star file with rows of which none linked (thresholds: the "
       "registry's gates)")
def star_files_linked(ev: Evidence) -> CheckOutcome:
    """Every Star file that was read (identity.files: its data rows, rejected ones included) links a row."""
    identity = ev.identity
    dead = [f"{name} ({rows:,} rows, none linked)" for subject, (name, rows) in sorted(identity.files.items())
            if rows and identity.by_subject.get(subject, {}).get("linked", 0) == 0]
    return _gate(ev, "star_files_linked", not dead, "; ".join(dead) or "every Star file with rows has linked rows",
                 "a Star file with rows must link at least one")


# ---- loads: read back from the table afterwards (lib/warehouse.load_figures); the rows stay, the load committed --

LOAD_REMEDY = ("the load committed and the table holds something other than what was written (a trigger, a table "
               "recreated without its key, another process writing): find what else writes it, fix it, replay {key}")


@check("rows_written_match_frame", "load",
       "What the load replaced (the district's roster; each subject and school year of its results) holds exactly "
       "the rows of the frame it loaded", LOAD_REMEDY)
def rows_written_match_frame(ev: Evidence) -> CheckOutcome:
    rows = ev.figures["rows"]
    return _outcome(ev, "rows_written_match_frame", rows == ev.frame_rows,
                    f"{ev.table} holds {rows} row(s) where this drop's load replaced the district's; the frame had "
                    f"{ev.frame_rows}", ev.table)


@check("no_duplicate_keys", "load", "No key of the district is held twice in the table", LOAD_REMEDY)
def no_duplicate_keys(ev: Evidence) -> CheckOutcome:
    n = ev.figures["duplicate_keys"]
    return _outcome(ev, "no_duplicate_keys", n == 0, f"{n} key(s) of AccountInfoId {ev.account_info_id} "
                    f"held more than once in {ev.table}", ev.table)


@check("account_info_id_stamped", "load", "Every row this drop loaded carries the registry's AccountInfoId",
       LOAD_REMEDY)
def account_info_id_stamped(ev: Evidence) -> CheckOutcome:
    n = ev.figures["other_account_rows"]
    return _outcome(ev, "account_info_id_stamped", n == 0, f"{n} row(s) of this drop in {ev.table} not stamped "
                    f"with AccountInfoId {ev.account_info_id}", ev.table)


def markdown_table() -> str:
    """The catalogue as docs/operations.md shows it (`belleville-mtss checks`; a test keeps the two equal)."""
    lines = ["| check | stage | asset | what it holds | when it fails | a person may accept it |",
             "|---|---|---|---|---|---|"]
    for c in CATALOGUE.values():
        remedy = c.remedy.format(district="the district", key="DISTRICT/DROP", name=c.name)
        lines.append(f"| `{c.name}` | {c.stage} | {', '.join(f'`{a}`' for a in c.assets)} | {c.description} | "
                     f"{remedy} | {'yes, per drop version' if c.acceptable else 'no'} |")
    return "\n".join(lines)


def load_checks(table: str, frame_rows: int, figures: dict[str, int], account_info_id: int) -> list[CheckOutcome]:
    """The checks of one warehouse load, from what the table holds afterwards (lib/warehouse.load_figures)."""
    return decide("load", Evidence(table=table, frame_rows=frame_rows, figures=figures,
                                   account_info_id=account_info_id))


LOAD_CHECKS = tuple(c.name for c in of_stage("load"))
