"""What each table-like frame holds, column by column, and where each warehouse column comes from.

Plain data (no Dagster): the definitions turn it into column schemas and column lineage for the UI.
"""
from __future__ import annotations

import sqlalchemy as sa

from .load.warehouse import RESULTS_FROM, ROSTER_FROM, assessment_results, student_roster
from .district.registry import District
from .sources import ASSESSMENT_FILES, DIRECTORY, FILES, SOURCE_OF, FileKind
from .sources.base import Column
from .students.identity import CLASSLINK_ON
_TYPES = {sa.Integer: "int", sa.String: "string", sa.DateTime: "datetime", sa.Float: "float", sa.Boolean: "bool"}


def described(table: sa.Table, descriptions: dict[str, str]) -> list[Column]:
    """A warehouse table's columns as declared in lib/load/warehouse.py (names, order, types), with what each holds."""
    if list(descriptions) != list(table.c.keys()):
        raise ValueError(f"{table.fullname}: describe exactly its columns, in order: {', '.join(table.c.keys())}")
    return [(c.name, next(t for k, t in _TYPES.items() if isinstance(c.type, k)), descriptions[c.name])
            for c in table.c]

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
    ("test_count", "int", "Tests (every assessment) whose link identifier equals the student's (none when two "
                          "share it)"),
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
    "StarTestCount": "Tests of the student in this drop, every assessment's (the name is from when Star was the "
                     "only one)",
    "DropId": "The drop that last listed the student (district/drop name)",
    "LoadedAt": "When the row was loaded (UTC)",
    "IsCurrent": "Listed by the district's newest drop; false: a student it no longer lists, kept as history",
})
RESULTS_TABLE: list[Column] = described(assessment_results, {
    "AccountInfoId": "The district's dm.AccountInfo id",
    "Subject": "The assessment's subject, as its vendor names it (Star: SR, SM or SEL)",
    "TestKey": "The vendor's test id (Star: AssessmentID, or subject:student:time where Renaissance sent none)",
    "StudentNumber": "PowerSchool STUDENT_NUMBER = the assessment's link column (Star: StudentIdentifier)",
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
    "Assessment": "Which assessment (vendor product) the test is: star, map_growth, ... (its source's name; rows "
                  "loaded before the column existed are star)",
})

# Our warehouse tables, by the asset that loads each.
WAREHOUSE_TABLES = {"dm_student_roster": student_roster.fullname, "dm_assessment_results": assessment_results.fullname}
# Where the sources that are tables (not files of the drop) live; the mapping spec's names.
SOURCE_TABLES = {"classlink_users": "dbo.ClassLinkUsers", "account_info": "dm.AccountInfo"}

Hop = tuple[str, str]  # (asset, column)


def lineage(district: District) -> dict[str, dict[str, list[Hop]]]:
    """For each table-like asset, each column's immediate upstream (asset, column): warehouse table <- frame <-
    validated frame <- the source file's header, as each source's model and this district's registry entry say.
    Columns we make (DropId, LoadedAt, source_row) have none."""
    sent = [k for k in FILES if k.asset in district.file_patterns]
    validated = {k.validated: {ours: [(k.asset, header)] for ours, header in SOURCE_OF[k.asset].headers(district).items()}
                 for k in sent}
    validated["validated_classlink_users"] = {ours: [("classlink_users", header)]
                                              for ours, header in DIRECTORY.headers(district).items()}
    ps, tests = district.roster_kind.validated, [k for k in ASSESSMENT_FILES if k in sent]
    on = CLASSLINK_ON[district.student_link.classlink]  # what a student and their ClassLink user share
    joined = [(ps, on), ("validated_classlink_users", on)]
    identity = {"student_number": [(ps, "student_number")], "student_link": [(ps, "student_link")],
                "classlink_user_id": [("validated_classlink_users", "classlink_user_id"), *joined],
                "classlink_link": joined,
                "test_count": [(ps, "student_link"), *((k.validated, "student_link") for k in tests)]}
    account = {"AccountInfoId": [("account_info", "AccountInfoId")]}
    roster = {ours: [(ps, src)] for ours, src in ROSTER_FROM.items() if src in validated[ps]} | account | {
        "ClassLinkUserId": [("student_identity_map", "classlink_user_id")],
        "StarTestCount": [("student_identity_map", "test_count")]}
    results = {ours: [(k.validated, col) for k in tests if (col := SOURCE_OF[k.asset].results_from.get(common))]
               for ours, common in RESULTS_FROM.items()} | account | {
        "StudentNumber": [("student_identity_map", "student_number"), *((k.validated, "student_link") for k in tests)]}
    return {**validated, "student_identity_map": identity, "student_roster": roster, "assessment_results": results,
            "dm_student_roster": {c: [("student_roster", c)] for c, _t, _d in ROSTER_TABLE},
            "dm_assessment_results": {c: [("assessment_results", c)] for c, _t, _d in RESULTS_TABLE}}


def lineage_paths(district: District, asset: str, column: str, graph: dict | None = None) -> list[list[Hop]]:
    """Every path from a column back to a source's column, the column itself first; [] for a column we make.
    `graph`: the district's `lineage`, made once for every hop of every path."""
    graph = lineage(district) if graph is None else graph
    if column not in graph.get(asset, {}):
        return [[(asset, column)]] if asset not in graph else []
    return [[(asset, column), *rest] for up in graph[asset][column] for rest in lineage_paths(district, *up, graph)]


def source_label(district: District, asset: str, column: str) -> str:
    """A source column as a person finds it: the file (the registry's pattern) or table, and the header."""
    where = district.file_patterns.get(asset) or SOURCE_TABLES.get(asset, asset)
    return f'{where}, column "{column}"'


def lineage_rows(district: District, asset: str) -> list[tuple[str, str, str]]:
    """(warehouse column, through, source column) for every path of every column of a warehouse asset."""
    table, graph = WAREHOUSE_TABLES[asset], lineage(district)
    rows = []
    for column in graph[asset]:
        for path in lineage_paths(district, asset, column, graph):
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


def file_columns(kind: FileKind, district: District, frame) -> list[Column]:
    """The columns a file asset read, as the file names them, each with the field of ours it feeds."""
    headers = SOURCE_OF[kind.asset].headers(district)
    fields: dict[str, str] = {ours: ours for ours in headers}  # a reader that assembles our columns (OneRoster)
    for ours, header in headers.items():
        fields.setdefault(header, ours)  # a header feeding two of ours (the number, and the link): the first
    return [(name, str(dtype), f"read into our {fields[name]}" if fields.get(name) else "read to tell the layout")
            for name, dtype in frame.schema.items()]


# The validated frame of each kind of file, from its source's model.
FRAMES = {k.asset: SOURCE_OF[k.asset].columns() for k in FILES} | {"classlink_users": DIRECTORY.columns()}
