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
from dataclasses import dataclass, field, replace
from typing import Literal

import polars as pl

from .sources import BY_NAME as SOURCES_BY_NAME, SOURCE_OF
from .district import crosswalk as xw
from .load.errors import ErrorRecord
from .load import order
from .load.order import Held
from .students.identity import IdentityMap, rows_by_source
from .district.registry import District

Stage = Literal["district", "gate", "replace", "load"]
# The asset(s) a check of each stage belongs to; a check of an earlier stage blocks everything after it. The
# "replace" checks compare the drop with what the warehouse holds, in the load's own transaction before it writes.
STAGE_ASSETS: dict[str, tuple[str, ...]] = {
    "district": ("district_crosswalk",),
    "gate": ("student_identity_map",),
    "replace": ("dm_student_roster",),
    "load": ("dm_student_roster", "dm_assessment_results"),
}
# The stage of each check's error rows in dm.IngestionErrors.
ERROR_STAGE = {"district": "district", "gate": "gate", "replace": "replace", "load": "warehouse"}
# What a drop is when a check of the stage fails (the run's outcome, its tag, its files' audit outcome), unless
# the check says otherwise (drop_is_newest: superseded).
STAGE_OUTCOME = {"district": "blocked", "gate": "blocked", "replace": "blocked", "load": "failed"}
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
    max_days_ahead: int = 2  # a drop dated further past `today` is held (lib/load/order.py)
    other_ids: dict[int, int] = field(default_factory=dict)  # the district's rows held under another AccountInfoId
    identity: IdentityMap | None = None  # gate stage
    current_roster: int = 0  # the district's roster now in dm.StudentRoster
    snapshot: dt.date | None = None  # replace stage: the drop's place in its district's order (lib/load/order.py)
    newer: list[Held] = field(default_factory=list)  # what the warehouse holds from a newer drop
    later_receipt: str = ""  # bytes of the drop received after those loaded (lib/load/warehouse.py)
    holding: dict[str, Held] = field(default_factory=dict)  # each scope the warehouse holds of the district
    current_numbers: set[str] = field(default_factory=set)  # the student numbers of its current roster
    roster_numbers: pl.Series | None = None  # this drop's (None: no roster in this load)
    results_rows: dict[str, int] = field(default_factory=dict)  # this drop's rows per results scope
    table: str = ""  # load stage: the table loaded, the frame's rows, what the table holds afterwards
    frame_rows: int = 0
    figures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    stage: Stage
    description: str
    remedy: str  # {district}: the registry's display name; {entry}: its key; {key}: the drop; {name}: the check
    acceptable: bool  # a person may accept a failure for one drop version (run --accept)
    decide: Callable[[Evidence], CheckOutcome]
    outcome: str = "blocked"  # what the drop is when this check fails and no one accepted it

    @property
    def assets(self) -> tuple[str, ...]:
        return STAGE_ASSETS[self.stage]

    def remedy_for(self, district: District, key: str) -> str:
        return self.remedy.format(district=district.display_name, entry=district.district, key=key, name=self.name)


CATALOGUE: dict[str, Check] = {}


def check(name: str, stage: Stage, description: str, remedy: str | None = None, outcome: str | None = None,
          acceptable: bool | None = None):
    """Registers a decision function as the check `name`. Gates and replace checks are acceptable per drop
    version unless said, by default with the acceptance remedy."""
    def register(decide: Callable[[Evidence], CheckOutcome]) -> Callable[[Evidence], CheckOutcome]:
        if name in CATALOGUE:
            raise ValueError(f"check {name} is declared twice")
        CATALOGUE[name] = Check(name, stage, description, remedy or ACCEPT_REMEDY,
                                stage in ("gate", "replace") if acceptable is None else acceptable,
                                decide, outcome or STAGE_OUTCOME[stage])
        return decide
    return register


def of_stage(stage: Stage) -> list[Check]:
    return [c for c in CATALOGUE.values() if c.stage == stage]


def acceptable() -> list[str]:
    return sorted(c.name for c in CATALOGUE.values() if c.acceptable)


def stopped_as(failed) -> str:
    """What a drop stopped by these failed checks (names) is: superseded when each says so, else blocked."""
    return "superseded" if {CATALOGUE[n].outcome if n in CATALOGUE else "blocked" for n in failed} == {
        "superseded"} else "blocked"


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
       "if these files are {district}'s, list the name in its registry entry (sources.<source>.names, or "
       "source_names.classlink for a ClassLink tenant) and run the drop again; if they are another district's, ask the sender to put them in that district's folder")
def names_match_registry(ev: Evidence) -> CheckOutcome:
    district, failing = ev.district, ev.crosswalk.filter(~pl.col("verified"))
    registered = f"the drop is registered to AccountInfoId {district.account_info_id} ({district.display_name}, " \
                 f"{district.state})"
    records, whys = [], []
    for row in failing.iter_rows(named=True):
        reason = "district_mismatch" if row["decision"] == "resolved" else f"district_{row['decision']}"
        section = SOURCE_OF[row["source"]].name if row["source"] in SOURCE_OF else row["source"]  # of a file asset
        if row["method"] == "state_id":
            what = (f"state district id '{row['name_seen']}' is not one of sources.{section}.state_ids (list it "
                    "there if it is the district's)")
            why = f"{row['file_name']} carries state district id '{row['name_seen']}', not the registry's"
        elif row["name_seen"] is None:
            what = (f"names no district: no district name and no state district id the registry lists; if the "
                    f"district's folder is evidence enough, say so with sources.{section}.bound_by_folder")
            why = f"{row['file_name']} names no district"
        else:
            what = (f"district name '{row['name_seen']}' "
                    f"{'names another district' if row['decision'] == 'resolved' else 'is ' + row['decision']} "
                    f"(best candidate {row['candidate']!s}, AccountInfoId {row['candidate_account_info_id']!s}, "
                    f"score {row['score']!s}, margin {row['margin']!s})")
            # short: the check's table and the run's summary give each file's candidates
            why = (f"{row['file_name']} names '{row['name_seen']}' ({row['decision']}; best candidate "
                   f"{row['candidate']!s}, AccountInfoId {row['candidate_account_info_id']!s})")
        records.append(ErrorRecord("district", reason, f"{row['file_name']}: {what}; {registered}", row["file_name"]))
        whys.append(why)
    why = "; ".join(whys)
    return CheckOutcome("district_names_match_registry", not records, why or "every name resolves", records)


@check("account_info_id_exists", "district",
       "The registry's AccountInfoId exists in dm.AccountInfo with the registry's NcesId and state",
       "correct account_info_id, nces_id or state in {district}'s registry entry, or ask the warehouse team why "
       "dm.AccountInfo disagrees")
def account_info_id_exists(ev: Evidence) -> CheckOutcome:
    problems = xw.account_info_problems(ev.district, ev.account_info)
    return CheckOutcome("account_info_id_exists", not problems, "; ".join(problems) or "none",
                        [ErrorRecord("district", "account_info", p, "dm.AccountInfo") for p in problems])


@check("account_info_id_unchanged", "district",
       "No rows of the district's drops are held in the warehouse under another AccountInfoId (a changed "
       "account_info_id would leave the students under the old one and load a second copy)",
       "if {district}'s account_info_id was corrected, move its rows to it: belleville-mtss warehouse rekey "
       "{entry} --from OLD (the old id the reason names); if the old id was right, restore it in the registry")
def account_info_id_unchanged(ev: Evidence) -> CheckOutcome:
    held = "; ".join(f"{n:,} row(s) under AccountInfoId {old}" for old, n in sorted(ev.other_ids.items()))
    return _outcome(ev, "account_info_id_unchanged", not ev.other_ids,
                    f"the warehouse holds {ev.district.district}'s drops' {held}; the registry says "
                    f"{ev.district.account_info_id}" if held else "none",
                    reason="account_info_id_changed")


@check("ferpa_review_current", "district",
       "The district's FERPA review of the identifiers used is recorded and recent enough",
       "record {district}'s current FERPA review date (verification.ferpa_review_on) in its registry entry")
def ferpa_review_current(ev: Evidence) -> CheckOutcome:
    problem = xw.ferpa_review_problem(ev.district, ev.today or dt.date.today(), ev.ferpa_max_days)
    return _outcome(ev, "ferpa_review_current", problem is None, problem or "none", reason="ferpa_review")


@check("drop_date_plausible", "district",
       "The date in the drop's name is a date, at most MTSS_MAX_DAYS_AHEAD days after today: a mistyped year would "
       "make the drop the district's newest for decades, and every real drop after it superseded; a mistyped month "
       "(13) would date it by the day it came, over newer data",
       "ask the sender for the drop's real date, then put the files under a drop named so (or move them on the drop "
       "server) and run it: belleville-mtss run {entry}/<real date>; {key} itself is never loaded (where the "
       "district writes every drop's date another way, set drop_date in its registry entry)")
def drop_date_plausible(ev: Evidence) -> CheckOutcome:
    name = ev.drop_key.split("/", 1)[-1]
    dated = order.date_in_name(name, ev.district.drop_date)
    today = ev.today or dt.date.today()
    ahead = order.too_far_ahead(dated, today, ev.max_days_ahead)
    # a date mistyped into no date at all (month 13) would date the drop by its receipt: newer than what it holds
    wrong = order.misdated(name, ev.district.drop_date)
    why = (f"the drop's name dates it {dated.isoformat()}, {(dated - today).days:,} days after today "
           f"({today.isoformat()}; at most {ev.max_days_ahead} allowed, MTSS_MAX_DAYS_AHEAD): held, nothing written"
           if ahead else f"the drop's name writes {wrong!r} where its date goes ({ev.district.drop_date}), and that "
           "is no date in it: held, nothing written" if wrong else "the drop's date is not in the future" if dated
           else "the drop's name carries no date")
    return _outcome(ev, "drop_date_plausible", not (ahead or wrong), why,
                    reason="impossible_drop_date" if wrong else "future_drop")


# ---- gates: what a drop must show before it may replace the district's data (thresholds: registry.Gates) --------

@check("classlink_link_rate", "gate", "Gate: enough students linked to a ClassLink user (thresholds: the "
       "registry's gates)")
def classlink_link_rate(ev: Evidence) -> CheckOutcome:
    cl, floor = ev.identity.stats["classlink_email"], ev.district.gates.min_classlink_link_rate
    return _gate(ev, "classlink_link_rate", cl["match_rate"] >= floor,
                 f"{_pct(cl['match_rate'])} of {cl['powerschool_students']:,} students linked to ClassLink",
                 f"at least {_pct(floor)} required (gates.min_classlink_link_rate)")


@check("assessment_link_rate", "gate", "Gate: enough of each assessment source's rows linked to a student "
       "(thresholds: each source's min_link_rate in the registry)")
def assessment_link_rate(ev: Evidence) -> CheckOutcome:
    """One rule for every source the district sends, each against its own threshold; the first source short of it
    fails the gate, and every source's figure is said."""
    figures, short, floors = [], [], []
    by_source = rows_by_source(ev.identity)
    for name, section in ev.district.assessments.items():
        rows, linked = by_source.get(name, (0, 0))
        rate = linked / rows if rows else 1.0  # no row at all: nothing to link (halted files say why)
        title = SOURCES_BY_NAME[name].title
        figures.append(f"{_pct(rate)} of {rows:,} {title} rows linked to a student")
        floors.append(f"at least {_pct(section.min_link_rate)} for {title} (sources.{name}.min_link_rate)")
        if rate < section.min_link_rate:
            short.append(len(figures) - 1)
    shown = short or range(len(figures))
    return _gate(ev, "assessment_link_rate", not short, "; ".join(figures[i] for i in shown) or "no assessment sent",
                 "; ".join(floors[i] for i in shown) or "none")


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


@check("assessment_files_linked", "gate", "Gate: no assessment file with test rows of which none linked (thresholds: "
       "the registry's gates)")
def assessment_files_linked(ev: Evidence) -> CheckOutcome:
    """Every assessment file that was read with records (identity.files: its tests, refused ones included) links
    a row."""
    identity = ev.identity
    dead = [f"{name} ({rows:,} test rows, none linked)" for asset, (name, rows) in sorted(identity.files.items())
            if rows and identity.by_file.get(asset, {}).get("linked", 0) == 0]
    return _gate(ev, "assessment_files_linked", not dead,
                 "; ".join(dead) or "every assessment file with rows has linked rows",
                 "an assessment file with rows must link at least one")


# ---- replace: the drop against what the warehouse holds, in the load's transaction (lib/load/order.py) ----------

@check("drop_is_newest", "replace",
       "No newer drop of the district holds what this drop would replace (its roster; each subject and school "
       "year of its results, by term for MAP Growth and DIBELS 8); drops are ordered by the date in their name "
       "(the registry's drop_date)",
       "nothing, when {key} is a replay or a backfill: the newer data stays. To make {key}'s data the district's "
       "on purpose: belleville-mtss run {key} --accept {name} --reason TEXT", outcome="superseded")
def drop_is_newest(ev: Evidence) -> CheckOutcome:
    when = ev.snapshot.isoformat() if ev.snapshot else "no date"
    if not ev.newer:
        return _outcome(ev, "drop_is_newest", True, f"no newer drop holds what this drop replaces (it is of {when})")
    by_drop: dict[tuple[str, str], list[str]] = {}
    for h in ev.newer:
        by_drop.setdefault((h.drop_key, h.date.isoformat()), []).append(h.scope)
    held = "; ".join(f"{key} (of {date}) for {', '.join(scopes)}" for (key, date), scopes in by_drop.items())
    failed = _outcome(ev, "drop_is_newest", False, f"superseded: the warehouse holds the newer {held}; this drop is "
                      f"of {when}; nothing was written", reason="superseded")
    return replace(failed, figure=newer_figure(key for key, _date in by_drop))


@check("version_is_latest", "replace",
       "No other bytes of the drop were received after those loaded (a run of the drop's bytes before a correction, "
       "ending after the correction's run, would put them back)",
       "nothing: the later bytes are the drop's, and their own run loads them; if it did not finish, run the drop "
       "again: belleville-mtss run {key}",
       outcome="superseded", acceptable=False)
def version_is_latest(ev: Evidence) -> CheckOutcome:
    if not ev.later_receipt:
        return _outcome(ev, "version_is_latest", True, "no other bytes of the drop were received after these")
    return _outcome(ev, "version_is_latest", False, f"superseded: {ev.later_receipt}, after those this run read; "
                    f"nothing was written", reason="superseded")


NEWER = ", "


def newer_figure(drop_keys) -> str:
    """drop_is_newest's figure: the newer drops that hold what the drop replaces. An acceptance records it, and
    covers those drops only (lib/students/gates.py `acceptance`)."""
    return NEWER.join(sorted(set(drop_keys)))


def newer_keys(figure: str) -> list[str]:
    return [k for k in figure.split(NEWER) if k]


@check("student_number_churn", "replace",
       "Gate: most student numbers of the district's current roster are still in the new roster (a renumbering, or "
       "an export of another identifier, would replace every student; thresholds: the registry's gates)",
       "if the district renumbered its students, accept it for this version: belleville-mtss run {key} --accept "
       "{name} --reason TEXT; if the export carries another identifier, ask for STUDENT_NUMBER (or correct "
       "student_link.powerschool in {district}'s registry entry)")
def student_number_churn(ev: Evidence) -> CheckOutcome:
    current, limit = ev.current_numbers, ev.district.gates.max_student_number_churn
    if ev.roster_numbers is None or not current:
        return _gate(ev, "student_number_churn", True, "no current roster to compare with", "a first roster is exempt")
    # the drop's numbers stay a column: a state's roster is a million of them, and a first roster needs none
    kept = int(pl.Series(list(current), dtype=pl.Utf8).is_in(ev.roster_numbers.implode()).sum())
    absent = (len(current) - kept) / len(current)
    return _gate(ev, "student_number_churn", absent <= limit,
                 f"{absent:.1%} of the {len(current):,} student numbers of the current roster are absent from the "
                 f"new roster", f"at most {_pct(limit)} allowed (gates.max_student_number_churn)")


@check("results_shrink", "replace",
       "Gate: no subject's school year (MAP Growth's or DIBELS 8's term) loses more than a share of the tests the "
       "warehouse holds for it (a results file filtered to one school would replace the district's year; "
       "thresholds: the registry's gates)")
def results_shrink(ev: Evidence) -> CheckOutcome:
    limit, shrunk = ev.district.gates.max_results_shrink, []
    for scope, rows in sorted(ev.results_rows.items()):
        held = ev.holding.get(scope)
        if held is not None and held.rows and rows < (1 - limit) * held.rows:
            shrunk.append(f"{scope}: {rows:,} tests against {held.rows:,} held ({rows / held.rows - 1:+.1%})")
    return _gate(ev, "results_shrink", not shrunk, "; ".join(shrunk) or "no subject's school year shrinks",
                 f"at most {_pct(limit)} fewer tests allowed (gates.max_results_shrink)")


# ---- loads: read back from the table afterwards (lib/warehouse.load_figures); the rows stay, the load committed --

LOAD_REMEDY = ("the load committed and the table holds something other than what was written (a trigger, a table "
               "recreated without its key, another process writing): find what else writes it, fix it, replay {key}")


@check("rows_written_match_frame", "load",
       "What the load replaced (the district's roster; each subject and school year of its results, by term for "
       "MAP Growth and DIBELS 8) holds exactly the rows of the frame it loaded", LOAD_REMEDY)
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
        remedy = c.remedy.format(district="the district", entry="DISTRICT", key="DISTRICT/DROP", name=c.name)
        lines.append(f"| `{c.name}` | {c.stage} | {', '.join(f'`{a}`' for a in c.assets)} | {c.description} | "
                     f"{remedy} | {'yes, per drop version' if c.acceptable else 'no'} |")
    return "\n".join(lines)


def load_checks(table: str, frame_rows: int, figures: dict[str, int], account_info_id: int) -> list[CheckOutcome]:
    """The checks of one warehouse load, from what the table holds afterwards (lib/warehouse.load_figures)."""
    return decide("load", Evidence(table=table, frame_rows=frame_rows, figures=figures,
                                   account_info_id=account_info_id))


LOAD_CHECKS = tuple(c.name for c in of_stage("load"))
