"""A OneRoster 1.1 or 1.2 CSV export as the district's roster: its students from users.csv (1.1: `role`; 1.2: the
`student` rows of roles.csv), each with the school it enrols them in (enrollments.csv, else the user's org), the
birth date demographics.csv holds, and the number the district's assessments carry, taken from the column the
registry names (`identifier`, `username`, `sourcedId`, `userMasterIdentifier`, a `userIds` type as `userIds:TYPE`,
or a `metadata.*` column). The district itself is the org of type `district` (orgs.csv).

manifest.csv decides what may be read: a file it lists as `delta` holds only what changed since the last export, so
a delta export is refused whole (it is never applied as if it were the roster); a file it lists as `bulk` must be in
the drop. Nothing here reads a database or logs a value: refusals name files and columns only.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import polars as pl

from ...receive.untrusted import escape, without_accounts
from ...load.warehouse import student_roster
from ..base import datetime_of
from ..powerschool.reader import type_students

MANIFEST = "manifest.csv"
VERSIONS = ("1.1", "1.2")
# The files the roster is made of (the others a OneRoster export carries, classes, courses, ..., are not read).
ROSTER_FILES = ("users", "orgs", "enrollments", "demographics", "roles")
NUMBER_COLUMNS = ("identifier", "username", "sourcedId", "userMasterIdentifier")  # and userIds:TYPE, metadata.*
DELETED = "tobedeleted"


def is_oneroster(header: list[str]) -> bool:
    """A OneRoster file's header: every one of its files starts with sourcedId, status, dateLastModified, but its
    manifest (propertyName, value)."""
    return header[:3] == ["sourcedId", "status", "dateLastModified"] or header == ["propertyName", "value"] or (
        "sourcedId" in header and {"givenName", "familyName", "enabledUser"} <= set(header))


class ExportRefused(ValueError):
    """A OneRoster export that cannot be the roster; `reason` for the error log, the message says what to ask for."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class Export:
    version: str
    students: pl.DataFrame  # the roster frame PowerSchool's validator gives (lib/sources/powerschool), + sourced_id
    rejected: pl.DataFrame  # source_row (users.csv line), reject_reason
    districts: pl.DataFrame  # the district orgs: name, identifier


def manifest(frame: pl.DataFrame) -> dict[str, str]:
    """manifest.csv as property -> value, the values lower case (`bulk`, `delta`, `absent`)."""
    if not {"propertyName", "value"} <= set(frame.columns):
        raise ExportRefused("missing_columns", f"{MANIFEST}: a OneRoster manifest has the columns propertyName, value")
    return {k.strip(): (v or "").strip().lower() for k, v in frame.select("propertyName", "value").rows() if k}


def _named(name: str) -> str:
    """A file the sender's manifest names, as a message may show it: a plain OneRoster file name as it is, anything
    else escaped, an address in it masked (the manifest is the sender's text, and messages go to the error log)."""
    return f"{name}.csv" if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name) else _shown(f"{name}.csv")


def _shown(text: str) -> str:
    return escape(without_accounts(text))


def check_manifest(props: dict[str, str], present: set[str]) -> str:
    """The export's version, once its manifest allows reading it as the whole roster (`present`: the file names the
    drop holds, lower case)."""
    version = next((v for k, v in props.items() if k.lower() == "oneroster.version"), "")
    if version not in VERSIONS:
        raise ExportRefused("unsupported_version", f"{MANIFEST} says oneroster.version "
                                                   f"{_shown(version) if version else '(none)'}; "
                                                   f"OneRoster {' and '.join(VERSIONS)} are read")
    files = {k[len("file."):]: v for k, v in props.items() if k.lower().startswith("file.")}
    delta = sorted(name for name, mode in files.items() if mode == "delta")
    if delta:
        raise ExportRefused("delta_export", (
            f"the OneRoster export is a delta ({', '.join(map(_named, delta))} listed as delta in {MANIFEST}): "
            "a delta holds only what changed since the district's last export, so it is never applied as the "
            "roster. Ask the district (its SIS or ClassLink Roster Server) for a bulk export: every file in "
            f"{MANIFEST} bulk or absent"))
    missing = sorted(_named(n) for n, mode in files.items() if mode == "bulk" and f"{n.lower()}.csv" not in present)
    if missing:
        raise ExportRefused("missing_listed_file", f"{MANIFEST} lists {', '.join(missing)} as bulk, but the drop "
                                                   "has no such file: ask the district to send the whole export")
    if {n.lower(): mode for n, mode in files.items()}.get("users") != "bulk":
        raise ExportRefused("missing_listed_file", f"{MANIFEST} does not list users.csv as bulk: the roster is read "
                                                   "from it")
    return version


def _live(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows not marked for deletion (a bulk export may still carry them)."""
    if "status" not in frame.columns:
        return frame
    return frame.filter(pl.col("status").fill_null("").str.strip_chars().str.to_lowercase() != DELETED)


def _require(frame: pl.DataFrame, name: str, *columns: str) -> pl.DataFrame:
    """The file, refused naming each column it lacks of those read from it (a crash on it stopped the whole drop)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ExportRefused("missing_columns", f"{name}: no column {', '.join(missing)}")
    return frame


def _blank(expr: pl.Expr) -> pl.Expr:
    text = expr.str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def number_expr(users: pl.DataFrame, column: str) -> pl.Expr:
    """The student number the registry names: a column, `userIds:TYPE` (its `{TYPE:id}` pair), or `metadata.*`."""
    if column.startswith("userIds:"):
        if "userIds" not in users.columns:
            raise ExportRefused("missing_columns", f"users.csv: no column userIds (the registry's student number is "
                                                   f"{column})")
        kind = re.escape(column.removeprefix("userIds:"))
        return _blank(pl.col("userIds").fill_null("").str.extract(rf"\{{\s*{kind}\s*:\s*([^}}]*)\}}", 1))
    if column not in users.columns:
        raise ExportRefused("missing_columns", f"users.csv: no column {column} (the registry's student number)")
    return _blank(pl.col(column))


def _students(files: dict[str, pl.DataFrame]) -> tuple[str, pl.DataFrame, pl.DataFrame]:
    """(version, the live users of the student role, each student's org from users.csv or roles.csv), once the
    manifest allows reading the export as the whole roster."""
    if MANIFEST not in files:
        raise ExportRefused("missing_manifest", f"a OneRoster export holds {MANIFEST}; this drop has none")
    version = check_manifest(manifest(files[MANIFEST]), set(files))
    users = _require(files["users.csv"], "users.csv", "sourcedId", "givenName", "familyName").with_row_index(
        "source_row", offset=2)
    if version == "1.1" or "roles.csv" not in files:
        if "role" not in users.columns:
            raise ExportRefused("missing_columns", "users.csv: no role column, and no roles.csv beside it")
        students = _live(users).filter(pl.col("role").str.strip_chars().str.to_lowercase() == "student")
        orgs_of = students.select("sourcedId", pl.col("orgSourcedIds").str.split(",").list.first().alias("org")
                                  if "orgSourcedIds" in users.columns else pl.lit(None, pl.Utf8).alias("org"))
    else:  # 1.2: a user's roles are in roles.csv, the primary one first
        roles = _live(_require(files["roles.csv"], "roles.csv", "userSourcedId", "orgSourcedId", "role")).filter(
            pl.col("role").str.strip_chars().str.to_lowercase() == "student")
        if "roleType" in roles.columns:  # optional: without it, each user's first role
            roles = roles.sort(pl.col("roleType").fill_null("").str.to_lowercase() != "primary", maintain_order=True)
        orgs_of = roles.select(pl.col("userSourcedId").alias("sourcedId"), pl.col("orgSourcedId").alias("org")
                               ).unique("sourcedId", keep="first", maintain_order=True)
        students = _live(users).join(orgs_of.select("sourcedId"), on="sourcedId", how="semi")
    return version, students, orgs_of


def candidates(files: dict[str, pl.DataFrame]) -> tuple[str, pl.DataFrame]:
    """(version, the export's students (live, student role) with every column that could be their number
    (identifier, username, sourcedId, userMasterIdentifier, each `userIds:TYPE`, each `metadata.*`) and their
    email): what onboarding measures against the assessments' identifiers."""
    version, students, _orgs_of = _students(files)
    types = sorted(set(students["userIds"].fill_null("").str.extract_all(r"\{[^:}]+:").explode().drop_nulls()
                       .str.strip_chars("{: ").to_list())) if "userIds" in students.columns else []
    columns = [c for c in NUMBER_COLUMNS if c in students.columns] + [c for c in students.columns
                                                                       if c.startswith("metadata.")]
    return version, students.select(
        *(number_expr(students, c).alias(c) for c in columns),
        *(number_expr(students, f"userIds:{t}").alias(f"userIds:{t}") for t in types),
        pl.col("email") if "email" in students.columns else pl.lit(None, pl.Utf8).alias("email"))


def assemble(files: dict[str, pl.DataFrame], number: str = "identifier", link: str | None = None
             ) -> tuple[str, pl.DataFrame]:
    """(version, the export's students as the roster's fields, not yet typed): `files` each file's raw text frame by
    its name (lower case), students numbered by the registry's `number` column, `link` (default: the number) the
    column the assessments carry. Each student's district is the district org above their school (the export's
    one district org where that chain is not given): its name and identifier, the crosswalk's evidence."""
    version, students, orgs_of = _students(files)
    schools = set(_live(files["orgs.csv"]).filter(pl.col("type").str.strip_chars().str.to_lowercase() == "school")
                  ["sourcedId"].to_list()) if "type" in files.get("orgs.csv", pl.DataFrame()).columns else None
    # a student's school: their student enrolment's, else the org users.csv / roles.csv give them
    school = orgs_of
    if "enrollments.csv" in files:
        enrolled = _live(_require(files["enrollments.csv"], "enrollments.csv", "userSourcedId", "schoolSourcedId",
                                  "role")).filter(pl.col("role").str.strip_chars().str.to_lowercase() == "student")
        # a bulk file keeps the enrolments that ended this session, and may hold next year's, and a student may take
        # a class at another school: the school is an enrolment in effect today (at the student's own org first,
        # then begun last); where none is (a summer, a replay), the one begun that ended last; next year's last
        def day(c: str) -> pl.Expr:  # ISO as the standard writes it, or month/day/year, with a time or not
            text = (_blank(pl.col(c)) if c in enrolled.columns else pl.lit(None, pl.Utf8)).str.split_exact(
                " ", 1).struct.field("field_0").str.split_exact("T", 1).struct.field("field_0")
            return datetime_of(text, ("%Y-%m-%d", "%m/%d/%Y")).dt.date()
        today = dt.date.today()
        begun = day("beginDate").fill_null(dt.date.min) <= today
        now = begun & (day("endDate").fill_null(dt.date.max) >= today)
        enrolled = enrolled.join(orgs_of.rename({"sourcedId": "userSourcedId", "org": "own"}), on="userSourcedId",
                                 how="left", maintain_order="left")
        # (an export without the date columns has every enrolment in effect: the student's own org still first)
        own = now & (pl.col("schoolSourcedId") == pl.col("own")).fill_null(False)
        keys = {"now": now, "own": own, "begun": begun, "ends": day("endDate").fill_null(dt.date.max),
                "begins": day("beginDate")}
        enrolled = enrolled.with_columns(**keys).sort(list(keys), descending=True, nulls_last=True,
                                                      maintain_order=True)
        # none in effect today: the enrolment that ended last, unless the org the SIS now gives the student is a
        # school none of their ended enrolments is at (they moved, or go up a school, and the new classes have not
        # begun or are not in yet): that school
        ended = enrolled.filter(~pl.col("now") & pl.col("begun")).select(
            pl.col("userSourcedId").alias("sourcedId"), pl.col("schoolSourcedId").alias("org"))
        moved = orgs_of.join(ended, on=["sourcedId", "org"], how="anti").filter(
            pl.col("org").is_in(list(schools)) if schools is not None else pl.col("org").is_not_null())
        enrolled = enrolled.select(
            pl.col("userSourcedId").alias("sourcedId"), pl.col("schoolSourcedId").alias("enrolled"), "now")
        school = orgs_of.join(enrolled.unique("sourcedId", keep="first", maintain_order=True), on="sourcedId",
                              how="left").select(
            "sourcedId", pl.when(pl.col("now").fill_null(False)).then(pl.col("enrolled"))
            .when(pl.col("sourcedId").is_in(moved["sourcedId"].implode())).then(pl.col("org"))
            .otherwise(pl.coalesce("enrolled", "org")).alias("org"))
    # one row per student: two users of one sourcedId are refused as such (typed), never multiplied by the joins
    school = school.unique("sourcedId", keep="first", maintain_order=True)
    orgs = _orgs(files)
    # a school's code: its identifier, else its sourcedId where dm.StudentRoster.SchoolId holds it (a GUID does not:
    # the students of a school without an identifier were refused, a school code being no reason to lose them)
    fits = pl.col("sourcedId").str.len_chars() <= student_roster.c.SchoolId.type.length
    org_id = orgs.select("sourcedId", pl.coalesce(_blank(pl.col("identifier")), pl.when(fits).then(pl.col("sourcedId")))
                         .alias("school_id"), "district_name", "district_id")
    # birth dates are optional in the standard: a demographics.csv without them reads them as unknown
    births = (_live(_require(files["demographics.csv"], "demographics.csv", "sourcedId"))
              .select("sourcedId", _blank(pl.col("birthDate")).alias("dob"))
              .unique("sourcedId", keep="first", maintain_order=True)
              if "birthDate" in files.get("demographics.csv", pl.DataFrame()).columns
              else pl.DataFrame(schema={"sourcedId": pl.Utf8, "dob": pl.Utf8}))
    mapped = students.join(school, on="sourcedId", how="left").join(
        org_id.rename({"sourcedId": "org"}), on="org", how="left").join(births, on="sourcedId", how="left").select(
        number_expr(students, number).alias("student_number"),
        number_expr(students, link or number).alias("link"),
        pl.col("email") if "email" in students.columns else pl.lit(None, pl.Utf8).alias("email"),
        pl.col("givenName").alias("first_name"), pl.col("familyName").alias("last_name"),
        pl.col("grades").str.split(",").list.first().str.strip_chars().alias("grade_level")
        if "grades" in students.columns else pl.lit(None, pl.Utf8).alias("grade_level"),
        "school_id", "dob", "source_row", pl.col("sourcedId").alias("sourced_id"), "district_name", "district_id",
        # the school the row itself names (the school found is the user's, one for all its rows): rows naming two
        # schools are two users; a row naming none (the district org) names no other
        (pl.col("orgSourcedIds").str.split(",").list.eval(pl.element().str.strip_chars().filter(
            pl.element().is_in(list(schools)) if schools is not None else pl.element() != "")).list.first()
         if "orgSourcedIds" in students.columns else pl.lit(None, pl.Utf8)).alias("row_school"))
    return version, mapped


def _orgs(files: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """orgs.csv's live orgs, each with the district org it belongs to (itself, the nearest above it however many
    levels up, or, where the chain of parents is not given, the export's one district org): that org's name and
    identifier; none where the chain leads to an org the export does not hold live (another district's, a deleted
    one) or loops, or the export has several district orgs and no chain reaches one."""
    columns = ("sourcedId", "name", "type", "identifier", "parentSourcedId")
    orgs = _live(files["orgs.csv"]) if "orgs.csv" in files else pl.DataFrame(schema={c: pl.Utf8 for c in columns})
    orgs = orgs.with_columns(*(pl.lit(None, pl.Utf8).alias(c) for c in columns if c not in orgs.columns))
    # an org listed twice is one org: joined as two, each of its students was two users, and all of them refused
    orgs = orgs.unique("sourcedId", keep="first", maintain_order=True)
    districts = orgs.filter(pl.col("type").str.strip_chars().str.to_lowercase() == "district").select(
        "sourcedId", _blank(pl.col("name")).alias("district_name"), _blank(pl.col("identifier")).alias("district_id"))
    only = districts.row(0)[1:] if districts.height == 1 else (None, None)
    named = {row[0]: row[1:] for row in districts.iter_rows()}
    parent = dict(orgs.select("sourcedId", _blank(pl.col("parentSourcedId"))).iter_rows())

    def above(org: str | None) -> tuple:
        seen = set()
        while org is not None and org not in seen:  # a loop of parents ends where it began
            if org in named:
                return named[org]
            seen.add(org)
            if org not in parent:  # a parent the export does not hold live (another district's, or deleted)
                return None, None
            org = parent[org]
            if org is None:  # the chain not given: the export's one district, if it has one
                return only
        return None, None

    found = [above(org) for org in orgs["sourcedId"]]
    return orgs.select("sourcedId", "identifier").with_columns(
        pl.Series("district_name", [f[0] for f in found], pl.Utf8),
        pl.Series("district_id", [f[1] for f in found], pl.Utf8))


def read_export(files: dict[str, pl.DataFrame], number: str = "identifier", link: str | None = None) -> Export:
    """The roster of a OneRoster export, typed as the roster is (lib/sources/powerschool: type_students)."""
    version, mapped = assemble(files, number, link)
    students, rejected = typed(mapped)
    return Export(version, students, rejected, district_orgs(files))


def district_orgs(files: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The export's district orgs: name, identifier."""
    return _orgs(files).select("district_name", "district_id").drop_nulls("district_name").unique(
        maintain_order=True).rename({"district_name": "name", "district_id": "identifier"})


def typed(mapped: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(typed students, rejected rows) of `assemble`'s frame: typed as a PowerSchool roster is, with the export's
    own columns kept. Refused first: users of one sourcedId who differ (which is the student is not guessed: a
    teacher's row may carry it), and, in an export that names districts, a student under none of them (their
    district cannot be checked: another district's student may be one)."""
    names_some = mapped["district_name"].is_not_null().any()
    # a student listed again as they were (an export joined from schools' exports, a user under a second org) is
    # one student: the repeats that agree on everything stored are let go, the first kept
    stored = pl.struct("student_number", "link", "email", "first_name", "last_name", "grade_level", "school_id",
                       "dob")
    differ = (stored.n_unique().over("sourced_id") > 1) | (
        pl.col("row_school").drop_nulls().n_unique().over("sourced_id") > 1)
    mapped = mapped.filter(~pl.col("sourced_id").is_duplicated() | differ
                           | (pl.col("source_row") == pl.col("source_row").min().over("sourced_id")))
    reason = (pl.when(pl.col("sourced_id").is_duplicated()).then(pl.lit("a sourcedId two users of the export carry"))
              .when(pl.lit(names_some) & pl.col("district_name").is_null())
              .then(pl.lit("their school is under none of the export's district orgs")))
    marked = mapped.with_columns(reason.alias("reject_reason"))
    refused = marked.filter(pl.col("reject_reason").is_not_null()).select("source_row", "reject_reason")
    students, rejected = type_students(marked.filter(pl.col("reject_reason").is_null()).drop("reject_reason",
                                                                                             "row_school"), "link")
    extra = mapped.select("source_row", "sourced_id", "district_name", "district_id")
    rejected = pl.concat([refused.cast(rejected.schema), rejected]).sort("source_row")
    return students.join(extra, on="source_row", how="left", maintain_order="left"), rejected
