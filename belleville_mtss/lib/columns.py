"""What each table-like frame holds, column by column, and where each warehouse column comes from.

Plain data (no Dagster): the definitions turn it into column schemas and column lineage for the UI.
"""
from __future__ import annotations

from .catalog import FILES, STAR_FILES
from .registry import District
from .star import STAR_COLUMNS

Column = tuple[str, str, str]  # name, type, description

STAR_FRAME: list[Column] = [
    ("subject", "string", "SR (reading), SM (math) or SEL (early literacy)"),
    ("test_key", "string", "AssessmentID; for a test without one, subject:student:completion time"),
    ("student_link", "string", "The Renaissance column the registry links by (StudentIdentifier by default), as text"),
    ("district_name", "string", "Renaissance DistrictName, as the vendor spells it"),
    ("school_name", "string", "Renaissance SchoolName"),
    ("school_year", "string", "School year, YYYY-YYYY"),
    ("completed_at", "datetime", "CompletedDate, parsed from any unambiguous layout"),
    ("grade", "string", "Grade at the time of the test (K, 1-12)"),
    ("scaled_score", "int", "Star scaled score"),
    ("percentile_rank", "int", "Percentile rank (1-99)"),
    ("unified_score", "int", "Star Unified scale score"),
    ("benchmark_category", "string", "Renaissance benchmark category name"),
    ("screening_window", "string", "Screening period window name"),
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
ROSTER_TABLE: list[Column] = [
    ("AccountInfoId", "int", "The district's dm.AccountInfo id (from the verified registry entry)"),
    ("StudentNumber", "string", "PowerSchool STUDENT_NUMBER"),
    ("FirstName", "string", "First name (PowerSchool)"),
    ("LastName", "string", "Last name (PowerSchool)"),
    ("Email", "string", "Email (PowerSchool)"),
    ("GradeLevel", "string", "Grade level (PowerSchool)"),
    ("SchoolId", "string", "School number (PowerSchool)"),
    ("ClassLinkUserId", "string", "Linked ClassLink user, when the email match is unique"),
    ("StarTestCount", "int", "Star tests of the student in this drop"),
    ("DropId", "string", "The drop that loaded the row (district/drop name)"),
    ("LoadedAt", "datetime", "When the row was loaded (UTC)"),
]
RESULTS_TABLE: list[Column] = [
    ("AccountInfoId", "int", "The district's dm.AccountInfo id"),
    ("Subject", "string", "SR, SM or SEL"),
    ("TestKey", "string", "AssessmentID (or subject:student:time where Renaissance sent none)"),
    ("StudentNumber", "string", "PowerSchool STUDENT_NUMBER = Star StudentIdentifier"),
    ("SchoolYear", "string", "School year, YYYY-YYYY"),
    ("CompletedAt", "datetime", "Completion time of the test"),
    ("Grade", "string", "Grade at the time of the test"),
    ("ScaledScore", "int", "Star scaled score"),
    ("PercentileRank", "int", "Percentile rank"),
    ("UnifiedScore", "int", "Star Unified scale score"),
    ("BenchmarkCategory", "string", "Renaissance benchmark category"),
    ("ScreeningWindow", "string", "Screening window name"),
    ("DropId", "string", "The drop that loaded the row"),
    ("LoadedAt", "datetime", "When the row was loaded (UTC)"),
]

STAR_ASSETS = tuple(f.name for f in STAR_FILES)



def _header(district: District, field: str) -> str:
    """The district's header for one of our PowerSchool fields (its first accepted one)."""
    return district.powerschool.columns[field][0]


def _links(district: District) -> list[tuple[str, str]]:
    """The columns a Star row is tied to its student by: the registry's Renaissance column and PowerSchool field."""
    return [(a, district.student_link.renaissance) for a in STAR_ASSETS] + [
        ("powerschool_students", _header(district, district.student_link.powerschool))]


def roster_lineage(district: District) -> dict[str, list[tuple[str, str]]]:
    """Warehouse roster column -> (source asset, source column) it came from."""
    ps = district.powerschool.columns
    lineage = {
        "StudentNumber": [("powerschool_students", _header(district, "student_number"))],
        "ClassLinkUserId": [("classlink_users", "UserId"), ("classlink_users", "Email"),
                            ("powerschool_students", _header(district, "email"))],
        "StarTestCount": _links(district),
        "AccountInfoId": [("account_info", "AccountInfoId")],
    }
    for ours, col in (("FirstName", "first_name"), ("LastName", "last_name"), ("GradeLevel", "grade_level"),
                      ("SchoolId", "school_id"), ("Email", "email")):
        if col in ps:
            lineage[ours] = [("powerschool_students", _header(district, col))]
    return lineage


def results_lineage(district: District) -> dict[str, list[tuple[str, str]]]:
    star = {"TestKey": "assessment_id", "SchoolYear": "school_year", "CompletedAt": "completed_date",
            "Grade": "grade", "ScaledScore": "scaled_score", "PercentileRank": "percentile_rank",
            "UnifiedScore": "unified_score", "BenchmarkCategory": "benchmark_category",
            "ScreeningWindow": "screening_window"}
    lineage = {ours: [(a, STAR_COLUMNS[col]) for a in STAR_ASSETS] for ours, col in star.items()}
    lineage["StudentNumber"] = list(dict.fromkeys([("powerschool_students", _header(district, "student_number")),
                                                   *_links(district)]))
    lineage["AccountInfoId"] = [("account_info", "AccountInfoId")]
    return lineage


# The validated frame of each catalogued file, by the kind of file it is.
FRAMES = {f.name: {"star": STAR_FRAME, "powerschool": POWERSCHOOL_FRAME}[f.kind] for f in FILES}
