"""The order of a district's drops: an older drop never replaces newer data.

A drop's snapshot date is read from its name with the registry's `drop_date` (strptime directives, default
`%Y-%m-%d`: the date in `belleville/2026-11-20`, found anywhere in the name); a name without one is dated by the
day (UTC) it was first received, any version, so a re-sent drop keeps its place. Of two drops of one date, the
one first received later is the newer (a correction sent under another name); a drop's own re-run applies.

Why the name rather than the order of receipt: a corrected old drop re-sent today, and every partition of a
backfill, is received last, yet is not the newest truth. What the warehouse holds is read from the warehouse
itself: the drop of the district's current roster, and the drop of each scope of its results (assessment, subject,
school year, and the term where the assessment's export is one term's: lib/load/warehouse.py `results_scopes`).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

import polars as pl
import sqlalchemy as sa

from ..sources import TERM_SNAPSHOTS
from .warehouse import SCOPE, Scope, assessment_results, chunked, ingestion_files, scope_term, student_roster

ROSTER = "roster"
_DIRECTIVES = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}", "%y": r"\d{2}", "%j": r"\d{3}", "%%": "%"}


@lru_cache(maxsize=32)
def _pattern(fmt: str) -> re.Pattern:
    parts = re.split(r"(%.)", fmt)
    unknown = [p for p in parts if p.startswith("%") and len(p) == 2 and p not in _DIRECTIVES]
    if unknown:
        raise ValueError(f"drop_date: {', '.join(unknown)} cannot be read from a drop name "
                         f"(use {', '.join(d for d in _DIRECTIVES if d != '%%')})")
    return re.compile("".join(_DIRECTIVES.get(p, re.escape(p)) for p in parts if p))


def check_format(fmt: str) -> str:
    """The registry's `drop_date`, refused (ValueError) when it holds a directive a name cannot be read with."""
    if not {"%Y", "%y"} & set(re.findall(r"%.", fmt)):
        raise ValueError("drop_date must name the year (%Y or %y)")
    _pattern(fmt)
    return fmt


def date_in_name(name: str, fmt: str) -> dt.date | None:
    """The first date the name spells in the format, if any (2026-13-01 is not one)."""
    for found in _pattern(fmt).finditer(name):
        try:
            return dt.datetime.strptime(found.group(0), fmt).date()
        except ValueError:
            continue
    return None


# A date as people write one, whatever a registry's format says: a year of 19xx or 20xx, a month and a day of one
# or two digits, year first or last, apart by - _ . / or a space; or a year, month and day in eight digits
_SEP = r"[-_./ ]"
_WRITTEN_DATE = re.compile(
    rf"(?<!\d)(?:(?P<y1>(?:19|20)\d\d){_SEP}(?P<m1>\d{{1,2}}){_SEP}(?P<d1>\d{{1,2}})"
    rf"|(?P<m2>\d{{1,2}}){_SEP}(?P<d2>\d{{1,2}}){_SEP}(?P<y2>(?:19|20)\d\d)"
    r"|(?P<y3>(?:19|20)\d\d)(?P<m3>\d\d)(?P<d3>\d\d))(?!\d)")


def _written_date(name: str) -> str | None:
    """The first date written in the name another way (`_WRITTEN_DATE`) that is a real day: `2025-26_1` (a school
    year and a number) is none, and no drop's date."""
    for found in _WRITTEN_DATE.finditer(name):
        n = 1 if found["y1"] else 2 if found["y2"] else 3
        try:
            dt.date(int(found[f"y{n}"]), int(found[f"m{n}"]), int(found[f"d{n}"]))
        except ValueError:
            continue
        return found.group(0)
    return None


def misdated(name: str, fmt: str) -> str | None:
    """What in the name is written as a date but is none in the format, when the format finds no real date there:
    a date it cannot be (2026-13-05), or a real day written another way (2026-11-5, 11-05-2026, 20261105). Either
    would date the drop by the day it came, newer than the drops it predates."""
    if date_in_name(name, fmt) is not None:
        return None
    found = _pattern(fmt).search(name)
    return found.group(0) if found is not None else _written_date(name)


def snapshot_date(drop_key: str, fmt: str, first_received: dt.datetime | None) -> dt.date | None:
    """The drop's place in its district's order: the date of its name, else the day it was first received."""
    found = date_in_name(drop_key.split("/", 1)[-1], fmt)
    if found is not None:
        return found
    return first_received.date() if first_received is not None else None


@dataclass(frozen=True)
class Held:
    """A scope of a district's data in the warehouse, the drop it came from, and its rows."""
    scope: str  # "roster", or a results scope: "star SR 2025-2026"
    drop_key: str
    date: dt.date | None
    rows: int = 0
    parts: Scope | None = None  # a results scope's (assessment, subject, year, term); term None for a year's
    received: dt.datetime | None = None  # when its drop was first received: which of two drops of a date is newer


def label(assessment: str, subject: str, year: str, term: str | None = None) -> str:
    """A results scope as the checks and messages name it: "star SR 2026-2027", "map_growth Reading 2026-2027
    Winter"."""
    return f"{assessment} {subject} {year}" + (f" {term}" if term is not None else "")


def scopes(roster_rows: int, results_scopes: list[Scope]) -> list[str]:
    """What a load replaces: the roster (when it has rows) and each scope of its results."""
    return ([ROSTER] if roster_rows else []) + [label(*scope) for scope in results_scopes]


def rows_per_scope(results) -> dict[str, int]:
    """A results frame's rows per scope ("star SR 2026-2027"), as `held` counts the warehouse's."""
    if results is None:
        return {}
    # A frame's scopes come in long runs (each file's rows together): counting the runs, then grouping the few
    # runs, costs a comparison per row instead of hashing three texts per row.
    scope = pl.struct(*SCOPE[:3], scope_term(results).alias(SCOPE[3]))
    runs = results.select(scope.rle().alias("run")).unnest("run").unnest("value")
    return {label(*scope): n for *scope, n in runs.group_by(SCOPE).agg(pl.col("len").sum()).rows()}


def held(conn: sa.Connection, account_info_id: int, fmt: str) -> dict[str, Held]:
    """Each scope of the district's data now in the warehouse, with the drop that wrote it and its rows."""
    r, a = student_roster.c, assessment_results.c
    found = {ROSTER: (key, n) for key, n in conn.execute(
        sa.select(sa.func.max(r.DropId), sa.func.count()).where(
            (r.AccountInfoId == account_info_id) & (r.IsCurrent == sa.true())).group_by(r.AccountInfoId))}
    by, parts = [a[name] for name in SCOPE], {}
    for assessment, subject, year, term, key, n in conn.execute(
            sa.select(*by, sa.func.max(a.DropId), sa.func.count())
            .where(a.AccountInfoId == account_info_id).group_by(*by)):
        one = (assessment, subject, year, term if assessment in TERM_SNAPSHOTS else None)
        scope = label(*one)
        parts[scope] = one
        before, m = found.get(scope, (key, 0))  # a school year's terms are one scope where the export is a year's
        found[scope] = (max(before, key), m + n)
    received = first_receipts(conn, {key for key, _n in found.values()})
    return {scope: Held(scope, key, snapshot_date(key, fmt, received.get(key)), int(n), parts.get(scope),
                        received.get(key)) for scope, (key, n) in found.items()}


def taken_from(conn: sa.Connection, account_info_id: int, results: pl.DataFrame | None, result_scopes: list[Scope],
               holding: dict[str, Held], this_date: dt.date | None, drop_key: str, max_days_ahead: int = 2,
               received: dt.datetime | None = None) -> list[str]:
    """The scopes, not the load's own, that a newer drop holds and that hold tests this load brings: the load would
    take those tests from them (apply_results takes a test from the subject, term or year of its assessment that
    held it), so a replay of an older drop would undo part of a newer one. Looked for only where a newer drop holds
    such a scope (a forward load asks nothing more)."""
    if results is None or not result_scopes:
        return []
    own, assessments = {label(*s) for s in result_scopes}, {s[0] for s in result_scopes}
    others = [h.scope for h in holding.values() if h.parts and h.scope not in own and h.parts[0] in assessments]
    a, found = assessment_results.c, []
    for h in newer(this_date, drop_key, others, holding, max_days_ahead=max_days_ahead, received=received):
        assessment, subject, year, term = h.parts
        keys = results.filter(pl.col("Assessment") == assessment)["TestKey"]
        where = (a.AccountInfoId == account_info_id) & (a.Assessment == assessment) & (a.Subject == subject) \
            & (a.SchoolYear == year) & ((a.ScreeningWindow == term) if term is not None else sa.true())
        if any(conn.execute(sa.select(a.TestKey).where(where & a.TestKey.in_(part)).limit(1)).first()
               for part in chunked(keys.unique().to_list())):
            found.append(h.scope)
    return found


def first_receipts(conn: sa.Connection, drop_keys: set[str]) -> dict[str, dt.datetime]:
    f = ingestion_files.c
    return {drop: at for part in chunked(drop_keys) for drop, at in conn.execute(
        sa.select(f.DropId, sa.func.min(f.ReceivedAt)).where(f.DropId.in_(part)).group_by(f.DropId))}


def too_far_ahead(date: dt.date | None, today: dt.date, max_days: int) -> bool:
    """A date more than `max_days` after today: a mistyped year, never a drop's real date."""
    return date is not None and (date - today).days > max_days


def newer(this_date: dt.date | None, drop_key: str, load_scopes: list[str], holding: dict[str, Held],
          today: dt.date | None = None, max_days_ahead: int = 2, received: dt.datetime | None = None) -> list[Held]:
    """The scopes of this load that the warehouse holds from a newer drop: of a later date, or of the same date and
    first received after this drop (`received`: a late re-run of a day's first drop undid its second). A drop of no
    known date (never received, no date in its name) is older than none; a held drop dated too far ahead (loaded
    before such drops were held) orders nothing out."""
    if this_date is None:
        return []
    today = today or dt.date.today()

    def after(h: Held) -> bool:
        return h.date > this_date or (h.date == this_date and None not in (h.received, received)
                                      and h.received > received)
    return [h for s in load_scopes if (h := holding.get(s)) is not None
            and h.drop_key != drop_key and h.date is not None and after(h)
            and not too_far_ahead(h.date, today, max_days_ahead)]
