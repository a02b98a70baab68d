"""What each table-like frame holds, column by column, and where each warehouse column comes from.

Plain data (no Dagster): the definitions turn it into column schemas and column lineage for the UI.
"""
from __future__ import annotations

import sqlalchemy as sa

from .load.warehouse import RESULTS_FROM_STAR, ROSTER_FROM_POWERSCHOOL, assessment_results, student_roster
from .read.catalog import FILES, STAR_FILES, FileSource
from .district.registry import District
from .read.powerschool import match_headers
from .read.star import HISTORICAL_HEADERS, STAR_COLUMNS, star_columns

Column = tuple[str, str, str]  # name, type, description
_TYPES = {sa.Integer: "int", sa.String: "string", sa.DateTime: "datetime", sa.Float: "float", sa.Boolean: "bool"}


def described(table: sa.Table, descriptions: dict[str, str]) -> list[Column]:
    """A warehouse table's columns as declared in lib/load/warehouse.py (names, order, types), with what each holds."""
    if list(descriptions) != list(table.c.keys()):
        raise ValueError(f"{table.fullname}: describe exactly its columns, in order: {', '.join(table.c.keys())}")
    return [(c.name, next(t for k, t in _TYPES.items() if isinstance(c.type, k)), descriptions[c.name])
            for c in table.c]

STAR_FRAME: list[Column] = [
    ("subject", "string", "SR (reading), SM (math) or SEL (early literacy)"),
    ("test_key", "string", "AssessmentID; for a test without one, subject:student:completion time"),
    ("student_link", "string", "The Renaissance column the registry links by (StudentIdentifier by default), as text"),
    ("district_name", "string", "Renaissance DistrictName, as the vendor spells it"),
    ("school_name", "string", "Renaissance SchoolName"),
    ("school_year", "string", "School year, YYYY-YYYY"),
    ("completed_at", "datetime", "CompletedDate (UTC), parsed from any unambiguous layout; 1990-2100 only"),
    ("grade", "string", "Grade at the time of the test (K, 1-12)"),
    ("scaled_score", "int", "Star scaled score"),
    ("percentile_rank", "int", "Percentile rank (1-99)"),
    ("unified_score", "int", "Star Unified scale score"),
    ("benchmark_category", "string", "Renaissance benchmark category name"),
    ("screening_window", "string", "Screening period window name"),
    ("assessment_status", "string", "Active, or Deactivated (a test a teacher invalidated: its scores emptied)"),
    ("deactivation_reason", "string", "Why a teacher deactivated the test, where Renaissance says"),
    ("source_row", "int", "Line number in the file (for tracing rejections, never a student value)"),
]
POWERSCHOOL_FRAME: list[Column] = [
    ("student_number", "string", "PowerSchool STUDENT_NUMBER, as text"),
    ("student_link", "string", "The PowerSchool field the Renaissance identifier carries (the registry's link)"),
    ("email", "string", "Student email as typed in PowerSchool"),
    ("email_key", "string", "Email trimmed and lower-cased: the ClassLink join key"),
    ("first_name", "string", "First name"),
    ("last_name", "string", "Last name"),
    ("grade_level", "string", "PowerSchool grade level (0 = K)"),
    ("school_id", "string", "PowerSchool school number"),
    ("source_row", "int", "Line number in the file"),
]
CLASSLINK_FRAME: list[Column] = [
    ("classlink_user_id", "string", "dbo.ClassLinkUsers.UserId"),
    ("tenant_name", "string", "ClassLink tenant name (the district as ClassLink names it)"),
    ("email_key", "string", "Email trimmed and lower-cased: the PowerSchool join key"),
]
CROSSWALK_FRAME: list[Column] = [
    ("source", "string", "The source asset the file feeds"),
    ("file_name", "string", "File (or table) of the drop"),
    ("name_seen", "string", "District name the file carries (none for PowerSchool exports)"),
    ("method", "string", "exact, fuzzy, typo, drop (bundled with the drop's district) or halted"),
    ("decision", "string", "resolved, ambiguous, unmatched, bundled or halted"),
    ("candidate", "string", "Best dm.AccountInfo candidate"),
    ("candidate_account_info_id", "int", "AccountInfoId of the best candidate"),
    ("score", "float", "rapidfuzz score of the best candidate (0-100)"),
    ("margin", "float", "Score lead over the runner-up"),
    ("verified", "bool", "True when the file's district is the registry's district"),
]
IDENTITY_FRAME: list[Column] = [
    ("student_number", "string", "PowerSchool STUDENT_NUMBER"),
    ("student_link", "string", "The value Star rows link by (the registry's PowerSchool link field)"),
    ("classlink_user_id", "string", "Linked ClassLink user (email match), when exactly one"),
    ("classlink_link", "string", "linked, not_in_classlink, ambiguous or no_email"),
    ("star_test_count", "int", "Star tests whose link identifier equals the student's (none when two share it)"),
]
ROSTER_TABLE: list[Column] = described(student_roster, {
    "AccountInfoId": "The district's dm.AccountInfo id (from the verified registry entry)",
    "StudentNumber": "PowerSchool STUDENT_NUMBER",
    "FirstName": "First name (PowerSchool)",
    "LastName": "Last name (PowerSchool)",
    "Email": "Email (PowerSchool)",
    "GradeLevel": "Grade level (PowerSchool)",
    "SchoolId": "School number (PowerSchool)",
    "ClassLinkUserId": "Linked ClassLink user, when the email match is unique",
    "StarTestCount": "Star tests of the student in this drop",
    "DropId": "The drop that last listed the student (district/drop name)",
    "LoadedAt": "When the row was loaded (UTC)",
    "IsCurrent": "Listed by the district's newest drop; false: a student it no longer lists, kept as history",
})
RESULTS_TABLE: list[Column] = described(assessment_results, {
    "AccountInfoId": "The district's dm.AccountInfo id",
    "Subject": "SR, SM or SEL",
    "TestKey": "AssessmentID (or subject:student:time where Renaissance sent none)",
    "StudentNumber": "PowerSchool STUDENT_NUMBER = Star StudentIdentifier",
    "SchoolYear": "School year, YYYY-YYYY",
    "CompletedAt": "Completion time of the test, UTC (Renaissance CompletedDate; a zoned value converted)",
    "Grade": "Grade at the time of the test",
    "ScaledScore": "Star scaled score",
    "PercentileRank": "Percentile rank",
    "UnifiedScore": "Star Unified scale score",
    "BenchmarkCategory": "Renaissance benchmark category",
    "ScreeningWindow": "Screening window name",
    "DropId": "The drop that loaded the row",
    "LoadedAt": "When the row was loaded (UTC)",
    "AssessmentStatus": "Active, or Deactivated: a teacher invalidated the test, its scores are empty (NULL: "
                        "loaded before statuses were read)",
    "DeactivationReason": "Why the test was deactivated, where Renaissance says",
})

STAR_ASSETS = tuple(f.name for f in STAR_FILES)
# Our warehouse tables, by the asset that loads each.
WAREHOUSE_TABLES = {"dm_student_roster": student_roster.fullname, "dm_assessment_results": assessment_results.fullname}
# Where the sources that are tables (not files of the drop) live; the mapping spec's names.
SOURCE_TABLES = {"classlink_users": "dbo.ClassLinkUsers", "account_info": "dm.AccountInfo"}

Hop = tuple[str, str]  # (asset, column)

# Each validated Star column, from the Star header it is read from (StudentIdentifier: the registry's link column).
_STAR_FROM = {"test_key": "assessment_id", "district_name": "district_name", "school_name": "school_name",
              "school_year": "school_year", "completed_at": "completed_date", "grade": "grade",
              "scaled_score": "scaled_score", "percentile_rank": "percentile_rank", "unified_score": "unified_score",
              "benchmark_category": "benchmark_category", "screening_window": "screening_window",
              "assessment_status": "assessment_status", "deactivation_reason": "deactivation_reason"}
_POWERSCHOOL_FROM = {"student_number": "student_number", "email": "email", "email_key": "email",
                     "first_name": "first_name", "last_name": "last_name", "grade_level": "grade_level",
                     "school_id": "school_id"}


def _header(district: District, field: str) -> str:
    """The district's header for one of our PowerSchool fields (its first accepted one)."""
    return district.powerschool.columns[field][0]


def lineage(district: District) -> dict[str, dict[str, list[Hop]]]:
    """For each table-like asset, each column's immediate upstream (asset, column): warehouse table <- frame <-
    validated frame <- the source file's header, as this district's registry entry maps it. Columns we make
    (DropId, LoadedAt, source_row) have none."""
    link = district.student_link
    ps, stars = "validated_powerschool_students", [f.validated for f in STAR_FILES]
    validated = {
        f.validated: {ours: [(f.name, STAR_COLUMNS[src])] for ours, src in _STAR_FROM.items()}
        | {"student_link": [(f.name, link.renaissance)]} for f in STAR_FILES
    }
    validated[ps] = {ours: [("powerschool_students", _header(district, src))]
                     for ours, src in _POWERSCHOOL_FROM.items() if src in district.powerschool.columns}
    validated[ps]["student_link"] = [("powerschool_students", _header(district, link.powerschool))]
    validated["validated_classlink_users"] = {"classlink_user_id": [("classlink_users", "UserId")],
                                              "tenant_name": [("classlink_users", "TenantName")],
                                              "email_key": [("classlink_users", "Email")]}
    both_emails = [(ps, "email_key"), ("validated_classlink_users", "email_key")]
    identity = {"student_number": [(ps, "student_number")], "student_link": [(ps, "student_link")],
                "classlink_user_id": [("validated_classlink_users", "classlink_user_id"), *both_emails],
                "classlink_link": both_emails,
                "star_test_count": [(ps, "student_link"), *((v, "student_link") for v in stars)]}
    account = {"AccountInfoId": [("account_info", "AccountInfoId")]}
    roster = {ours: [(ps, src)] for ours, src in ROSTER_FROM_POWERSCHOOL.items() if src in validated[ps]} | account | {
        "ClassLinkUserId": [("student_identity_map", "classlink_user_id")],
        "StarTestCount": [("student_identity_map", "star_test_count")]}
    results = {ours: [(v, src) for v in stars] for ours, src in RESULTS_FROM_STAR.items()} | account | {
        "StudentNumber": [("student_identity_map", "student_number"), *((v, "student_link") for v in stars)]}
    return {**validated, "student_identity_map": identity, "student_roster": roster, "assessment_results": results,
            "dm_student_roster": {c: [("student_roster", c)] for c, _t, _d in ROSTER_TABLE},
            "dm_assessment_results": {c: [("assessment_results", c)] for c, _t, _d in RESULTS_TABLE}}


def lineage_paths(district: District, asset: str, column: str) -> list[list[Hop]]:
    """Every path from a column back to a source's column, the column itself first; [] for a column we make."""
    graph = lineage(district)
    if column not in graph.get(asset, {}):
        return [[(asset, column)]] if asset not in graph else []
    return [[(asset, column), *rest] for up in graph[asset][column] for rest in lineage_paths(district, *up)]


def source_label(district: District, asset: str, column: str) -> str:
    """A source column as a person finds it: the file (the registry's pattern) or table, and the header."""
    where = district.files.get(asset) or SOURCE_TABLES.get(asset, asset)
    return f'{where}, column "{column}"'


def lineage_rows(district: District, asset: str) -> list[tuple[str, str, str]]:
    """(warehouse column, through, source column) for every path of every column of a warehouse asset."""
    table = WAREHOUSE_TABLES[asset]
    rows = []
    for column in lineage(district)[asset]:
        for path in lineage_paths(district, asset, column):
            through = " <- ".join(f"{a}.{c}" for a, c in path[1:-1])
            rows.append((f"{table}.{column}", through, source_label(district, *path[-1])))
    return rows


def lineage_markdown(district: District, asset: str) -> str:
    body = "\n".join(f"| {w} | {t} | {s} |" for w, t, s in lineage_rows(district, asset))
    return ("| warehouse column | <- through (asset.column) | <- source file column (registry) |\n|---|---|---|\n"
            + body)


def lineage_text(district: District, target: str) -> str:
    """`dm.AssessmentResults.ScaledScore` traced to its sources, one path per block (the CLI's `lineage`)."""
    table, _, column = target.rpartition(".")
    assets = {t.lower(): a for a, t in WAREHOUSE_TABLES.items()}
    if table.lower() not in assets:
        raise KeyError(f"{table or target}: not one of our tables ({', '.join(WAREHOUSE_TABLES.values())})")
    asset = assets[table.lower()]
    columns = {c.lower(): c for c in lineage(district)[asset]}
    if column.lower() not in columns:
        raise KeyError(f"{target}: no such column; {WAREHOUSE_TABLES[asset]} has {', '.join(columns.values())}")
    column = columns[column.lower()]
    paths = lineage_paths(district, asset, column)
    if not paths:
        return f"{WAREHOUSE_TABLES[asset]}.{column}: made by the pipeline itself (no source column)"
    blocks = []
    for path in paths:
        lines = [f"{WAREHOUSE_TABLES[asset]}.{column}"]
        lines += [f"  <- {a}.{c}" for a, c in path[1:-1]]
        lines.append(f"  <- {path[-1][0]}: {source_label(district, *path[-1])}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def file_columns(source: FileSource, district: District, frame) -> list[Column]:
    """The columns a file asset read, as the file names them, each with the field of ours it feeds."""
    if source.kind == "powerschool":
        fields = {header: field for field, header in match_headers(frame.columns, district.powerschool).items()}
    else:
        by_v2 = {header: field for field, header in star_columns(district.student_link.renaissance).items()}
        fields = {h: by_v2.get(HISTORICAL_HEADERS.get(h, h)) for h in frame.columns}
    return [(name, str(dtype), f"read into our {fields[name]}" if fields.get(name) else "read to tell the layout")
            for name, dtype in frame.schema.items()]


# The validated frame of each catalogued file, by the kind of file it is.
FRAMES = {f.name: {"star": STAR_FRAME, "powerschool": POWERSCHOOL_FRAME}[f.kind] for f in FILES}
