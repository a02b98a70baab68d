"""The district crosswalk: for every file of a drop, which district it names, resolved against dm.AccountInfo
within the registry's state (and county), and whether that is the district the registry says the drop is."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, replace

import polars as pl

from .names import Reference, normalise, plain
from .registry import District


@dataclass(frozen=True)
class CrosswalkEntry:
    source: str
    file_name: str | None
    name_seen: str | None
    method: str  # registry, exact, fuzzy, typo, none, drop (no district column: the drop says), halted
    decision: str  # resolved, ambiguous, unmatched, bundled, halted
    candidate: str | None
    candidate_account_info_id: int | None
    score: float | None
    margin: float | None
    verified: bool
    suggest_listing: bool = False  # verified by score, not listed in the registry: worth adding to source_names


# Placeholders a vendor writes when it has no district: they never verify by score, only by a registry listing.
NEVER_BY_SCORE = {"", "defaultdistrict", "district", "unknown", "none", "na", "null", "test", "testdistrict"}


def account_reference(account_info: pl.DataFrame) -> Reference:
    return Reference(
        account_info.select(
            pl.col("NcesId").fill_null(pl.col("AccountInfoId").cast(pl.Utf8)).alias("key"),
            pl.col("DistrictName").alias("name"),
            pl.col("State").alias("state"),
            pl.col("County").alias("county"),
            pl.col("AccountInfoId").alias("account_info_id"),
        )
    )


def resolve_names(district: District, reference: Reference, source: str, file_name: str | None, names: list[str],
                  listed: list[str]) -> list[CrosswalkEntry]:
    """Each name the file carries. The registry is the authority: a name `listed` for this source (case, spacing
    and punctuation aside) verifies the file whatever its score; another name verifies only by resolving, within
    the district's state, to the registry's AccountInfoId (and is then worth listing); a placeholder never does."""
    known = {plain(n) for n in listed}
    entries = []
    for name in names:
        if plain(name) in known:
            entries.append(CrosswalkEntry(source, file_name, name, "registry", "resolved", district.display_name,
                                          district.account_info_id, None, None, True))
            continue
        if plain(name) in NEVER_BY_SCORE:
            entries.append(CrosswalkEntry(source, file_name, name, "none", "unmatched", None, None, None, None, False))
            continue
        res = reference.resolve(name, state=district.state, county=district.county)
        best = res.best
        verified = res.decision == "resolved" and best is not None and best.account_info_id == district.account_info_id
        entries.append(
            CrosswalkEntry(
                source=source, file_name=file_name, name_seen=name, method=res.method, decision=res.decision,
                candidate=best.name if best else None,
                candidate_account_info_id=best.account_info_id if best else None,
                score=best.score if best else None, margin=res.margin, verified=verified, suggest_listing=verified,
            )
        )
    return entries


def bundled(source: str, file_name: str) -> CrosswalkEntry:
    return CrosswalkEntry(source, file_name, None, "drop", "bundled", None, None, None, None, True)


def halted(source: str, file_name: str | None) -> CrosswalkEntry:
    return CrosswalkEntry(source, file_name, None, "halted", "halted", None, None, None, None, True)


def to_frame(entries: list[CrosswalkEntry]) -> pl.DataFrame:
    schema = {
        "source": pl.Utf8, "file_name": pl.Utf8, "name_seen": pl.Utf8, "method": pl.Utf8, "decision": pl.Utf8,
        "candidate": pl.Utf8, "candidate_account_info_id": pl.Int64, "score": pl.Float64, "margin": pl.Float64,
        "verified": pl.Boolean, "suggest_listing": pl.Boolean,
    }
    return pl.DataFrame([asdict(e) for e in entries], schema=schema)


def account_info_problems(district: District, account_info: pl.DataFrame) -> list[str]:
    """What does not hold about the registry's AccountInfoId in dm.AccountInfo."""
    row = account_info.filter(pl.col("AccountInfoId") == district.account_info_id)
    if row.is_empty():
        return [f"AccountInfoId {district.account_info_id} is not in dm.AccountInfo"]
    problems = []
    nces, state, name = row["NcesId"][0], row["State"][0], row["DistrictName"][0]
    if nces is not None and nces != district.nces_id:
        problems.append(f"AccountInfoId {district.account_info_id} has NcesId {nces}, registry says {district.nces_id}")
    listed = {normalise(n) for n in district.source_names.account_info}
    if nces is None and normalise(name or "") not in listed:
        # no NcesId to hold the id to: its name must be the registry's, or a mistyped id (another district of the
        # state) loaded the drop under that district, every check passing
        problems.append(f"AccountInfoId {district.account_info_id} is named {name!r} in dm.AccountInfo, and has no "
                        "NcesId; the registry's source_names.account_info lists "
                        f"{', '.join(map(repr, district.source_names.account_info))}")
    if state != district.state:
        problems.append(f"AccountInfoId {district.account_info_id} is in {state}, registry says {district.state}")
    return problems


def check_entry(district: District, account_info: pl.DataFrame, reference=None) -> list[str]:
    """Everything that does not hold about a registry entry against dm.AccountInfo (empty: all holds): its
    AccountInfoId, NcesId and state, and each listed name resolved by score alone (a listed name verifies drops
    whatever its score; this says whether the listing agrees with the warehouse). `reference`: the
    `account_reference` of `account_info`, when the caller checks many entries against one."""
    problems = account_info_problems(district, account_info)
    reference = account_reference(account_info) if reference is None else reference
    names = district.source_names
    lists = [("account_info", names.account_info),
             *((name, section.names) for name, section in district.sources.items()), ("classlink", names.classlink)]
    for source, listed in lists:
        for entry in resolve_names(district, reference, source, None, listed, []):
            if not entry.verified:
                problems.append(
                    f"{source} name '{entry.name_seen}' is {entry.decision}: best candidate {entry.candidate!s} "
                    f"(AccountInfoId {entry.candidate_account_info_id!s}, score {entry.score!s}, margin {entry.margin!s})"
                )
    return problems


def ferpa_review_problem(district: District, today: dt.date, max_age_days: int) -> str | None:
    """Why the district's FERPA review of the identifiers used does not allow loading, or None."""
    reviewed = district.verification.ferpa_review_on
    if reviewed is None:
        return f"{district.district}: no FERPA review of the identifiers used is recorded in the registry"
    age = (today - reviewed).days
    if age < 0:
        return (f"{district.district}: the FERPA review is recorded on {reviewed.isoformat()}, a date still to "
                "come; record the date the review was actually done")
    if age > max_age_days:
        return (f"{district.district}: the FERPA review of {reviewed.isoformat()} is {age} days old "
                f"(at most {max_age_days} allowed); review again and record the date in the registry")
    return None


def listed_names(district: District, source) -> tuple[str, list[str]]:
    """Where the registry lists the district names a source's files carry, and the names it lists."""
    if source.role == "directory":
        return "source_names.classlink", district.source_names.classlink
    return f"sources.{source.name}.names", district.sources[source.name].names


STUDENTS_MIN = 5  # students whose rows carry a value, at least, for it to be shown as read (`_shown`)
SHARE_MIN = 0.2  # ... and at least this share of the file's students, unless it names itself a district's:
# a common surname a shifted column holds is neither (a school still under an old district name is the second)
DISTRICT_WORDS = re.compile(r"(?i)\b(schools?|district|public|board|education|unified|independent|regional|"
                            r"township|academy|charter|isd|usd|cusd|sd|ps)\b")


def carried_widely(students: int, of: int, value: str) -> bool:
    """Whether a value the rows of `students` of a file's `of` students carry is evidently not one student's."""
    return students >= STUDENTS_MIN and (students >= SHARE_MIN * of or DISTRICT_WORDS.search(value) is not None)


DISTRICTS_OWN = ("resolved", "ambiguous")  # decisions on a value that names a district (or is too close to two)


def _shown(entries: list[CrosswalkEntry], frame: pl.DataFrame, column: str, student: str | None) -> list[CrosswalkEntry]:
    """The entries with each name or id a file carries as it may be shown (an error row, a check's metadata, a log):
    as read where it is evidently a district's (it resolved to one, or is too close to two to call, or it is
    `carried_widely`); else only how many rows carry it. A district column holding a student's value (a stray cell,
    a shifted column: their name, email or number, a surname five students share) is theirs, not the log's."""
    if student is None or student not in frame.columns:
        return entries  # no student's rows (the ClassLink tenants): nothing of a student to carry
    unsure = [e.name_seen for e in entries if e.decision not in DISTRICTS_OWN]
    if not unsure:
        return entries  # the usual drop: every value is a district's; counting students per value costs a pass
    carried = {name: (rows, students) for name, rows, students in frame.filter(pl.col(column).is_in(unsure))
               .group_by(column).agg(pl.len(), pl.col(student).n_unique()).iter_rows()}
    of = frame[student].n_unique()
    out = []
    for e in entries:
        rows, students = carried.get(e.name_seen, (0, 0))
        evident = e.decision in DISTRICTS_OWN or carried_widely(students, of, e.name_seen)
        out.append(e if evident else replace(e, name_seen=f"<a value of {rows:,} row(s), not shown>"))
    return out


def build_crosswalk(district: District, account_info: pl.DataFrame, validated: list) -> pl.DataFrame:
    """One row per (file, district name seen), for every file of the drop the district sends and the ClassLink
    tenant: a file whose source names the district (`district_column`) is resolved; a file with no district
    evidence is bundled with the drop's district when it is a roster (PowerSchool) or its source's section says
    `bound_by_folder`, and is unmatched otherwise; a halted file is listed as halted (its error is already
    logged)."""
    from ..sources import DIRECTORY, SOURCE_OF

    reference = account_reference(account_info)
    entries = []
    for v in validated:
        source = SOURCE_OF.get(v.source, DIRECTORY)
        if not v.usable:
            entries.append(halted(v.source, v.file_name))
            continue
        if v.frame.is_empty():
            continue  # every row refused: nothing of it can load (the gates say so), nor name a district
        found = []
        student = source.results_from.get("student_link")
        if source.district_column:
            names = sorted(v.frame[source.district_column].drop_nulls().unique().to_list())
            found += _shown(resolve_names(district, reference, v.source, v.file_name, names,
                                          listed_names(district, source)[1]), v.frame, source.district_column, student)
        if source.state_id_column:
            ids = sorted(v.frame[source.state_id_column].drop_nulls().unique().to_list())
            listed = district.sources[source.name].state_ids
            # none listed: an id is still checked where it is the file's only evidence, so a file naming a district
            # is never bound by its folder alone (another district's file in ours loaded as ours)
            if listed or (ids and not found):
                found += _shown(check_state_ids(district, v.source, v.file_name, ids, listed), v.frame,
                                source.state_id_column, student)
        if found:
            entries += found
        elif source.role != "assessment" or district.sources[source.name].bound_by_folder:
            # no name in the file (PowerSchool's never has one): its folder binds it, where the registry says so
            entries.append(bundled(v.source, v.file_name))
        else:  # no district evidence, and the registry does not say its folder is enough
            entries.append(CrosswalkEntry(v.source, v.file_name, None, "none", "unmatched", None, None, None, None,
                                          False))
    return to_frame(entries)


def check_state_ids(district: District, source: str, file_name: str, ids: list[str],
                    listed: list[str]) -> list[CrosswalkEntry]:
    """Each state district id a file carries against the ids the registry lists for its source: a listed one is the
    district's, any other is not (another district's, or a typo the sender must explain)."""
    known = {i.strip().upper() for i in listed}
    entries = []
    for i in ids:
        ours = i.strip().upper() in known
        entries.append(CrosswalkEntry(source, file_name, i, "state_id", "resolved" if ours else "unmatched",
                                      district.display_name if ours else None,
                                      district.account_info_id if ours else None, None, None, ours))
    return entries
