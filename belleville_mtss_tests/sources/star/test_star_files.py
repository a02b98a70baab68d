"""Every real Renaissance Star sample file, read in place from the shared reference folder, through ingest and
validation: overall-results files load with every row accounted for, the other Star files are refused by kind."""
import csv
import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.district.registry import load_district
from belleville_mtss.lib.sources.star.reader import bind_columns, parse_dates, type_rows
from ...conftest import REFERENCE

REPO = Path(__file__).resolve().parents[3]
STAR_DIR = REFERENCE / "star"
try:
    STAR_FILES = sorted(p.name for p in STAR_DIR.glob("*.csv"))
except OSError:
    STAR_FILES = []

OTHER_KINDS = ("Dashboard_Standards", "SkillArea")
SPANISH = "2023_2024_SRS"  # a historical layout's Star Early Literacy Spanish tests, by each row's Activity Type
# Per row of a file: (v2 header, "Historical Enterprise" header).
STUDENT_ID = ("StudentIdentifier", "Student Identifier")
DISTRICT = ("DistrictName", "District Name")
SCALED = ("ScaledScore", "Scaled Score")
ACTIVITY = ("AssessmentID", "Renaissance Activity ID")


@pytest.fixture(scope="module")
def district():
    return load_district(REPO / "belleville_mtss" / "districts" / "belleville.yaml")


def source_for(name: str) -> str:
    if "2023_2024_SRS" in name:  # named SRS, but its Activity Type says Star Early Literacy Spanish tests
        return "star_early_literacy"
    tokens = set(re.split(r"[^A-Za-z0-9]+", name))
    if "SM" in tokens:
        return "star_math"
    if "SEL" in tokens:
        return "star_early_literacy"
    return "star_reading"


def read_records(path: Path) -> tuple[list[str], list[list[str]]]:
    """The file's header and data records, counted independently of the library (Python's csv module)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        records = list(csv.reader(fh))
    return records[0], records[1:]


def column(header: list[str], names: tuple[str, str]) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise AssertionError(f"none of {names} in the header")


def test_reference_star_folder_holds_the_documented_files(reference_dir):
    found = sorted(p.name for p in (reference_dir / "star").glob("*.csv"))
    assert found == STAR_FILES, "files collected at import time differ from the folder"
    assert len(found) == 17
    widths = set()
    for name in found:
        if not any(kind in name for kind in OTHER_KINDS):
            widths.add(len(read_records(reference_dir / "star" / name)[0]))
    # v2 (126/118), older layouts (112/120/123) and the 80-column Historical Enterprise layout are all present.
    assert {126, 118, 123, 120, 112, 80} <= widths


def test_subject_is_chosen_from_the_file_name():
    assert source_for("powerschool_etl__SM_v2_118col_plain__New_SCRUBBED_SM_v2.csv") == "star_math"
    assert source_for("powerschool_etl__SEL_v2_118col_quoted__SEL_v2_scrub.csv") == "star_early_literacy"
    assert source_for("powerschool_etl__SRS_v2_123col_EXCEL_MANGLED_dates__STARSpanishReading.csv") == "star_reading"
    assert source_for("Historical_Star_Math_Enterprise_EOY23_(English)_20230606_SM_V2_SCRUB.csv") == "star_math"


# Without the reference folder, one case: its reference_dir fixture then skips naming the folder (fails where CI).
@pytest.mark.parametrize("name", STAR_FILES or [None], ids=STAR_FILES or ["no reference folder"])
def test_real_star_file(name, reference_dir, district):
    path = reference_dir / "star" / name
    source = source_for(name)
    src = ingest_file(source, path, district)
    assert src.halted is None, src.halted
    validated, errors = validate_file(src, district)

    if any(kind in name for kind in OTHER_KINDS + (SPANISH,)):
        assert validated.frame is None
        assert validated.halted is not None and validated.halted.reason == "wrong_file"
        assert [e.reason for e in errors] == ["wrong_file"]
        if SPANISH in name:  # its Activity Type says Spanish: loaded as English SEL, its scores mixed with theirs
            assert "SELS instead" in validated.halted.message
        return

    assert validated.halted is None, validated.halted
    frame = validated.frame
    assert frame is not None
    header, records = read_records(path)
    assert all(records), "blank records would make the independent count meaningless"
    assert frame.height + sum(validated.rejected.values()) == len(records)
    assert sum(e.row_count for e in errors) == sum(validated.rejected.values())
    assert frame.height > 0
    assert frame["subject"].unique().to_list() == [{"star_reading": "SR", "star_math": "SM",
                                                    "star_early_literacy": "SEL"}[source]]

    sid, dist = column(header, STUDENT_ID), column(header, DISTRICT)
    scaled, activity = column(header, SCALED), column(header, ACTIVITY)
    for row in frame.select("source_row", "student_link", "district_name", "scaled_score",
                            "test_key", "completed_at", "school_year").iter_rows(named=True):
        record = records[row["source_row"] - 2]
        assert row["student_link"] == record[sid]  # text, exactly as in the file
        assert row["district_name"] == record[dist] and row["district_name"]
        raw_score = record[scaled].strip()
        assert row["scaled_score"] == (int(float(raw_score)) if raw_score not in ("", "NA") else None)
        assert row["completed_at"] is not None
        if record[activity].strip():
            assert row["test_key"] == record[activity].strip()
        else:  # no AssessmentID ("missing tests" exports): keyed by subject, student and completion time
            stamp = row["completed_at"].strftime("%Y%m%d%H%M%S") + f"{row['completed_at'].microsecond // 1000:03d}"
            assert row["test_key"] == f"{frame['subject'][0]}:{record[sid]}:{stamp}"
        assert re.fullmatch(r"\d{4}-\d{4}", row["school_year"])
    assert frame["test_key"].str.len_chars().min() > 0
    # (One scrubbed SM file reuses an AssessmentID for two students, so only the generated keys must be unique.)
    no_id = [r[sid] for r in records if not r[activity].strip()]
    generated = frame.filter(pl.col("test_key").str.contains(":"))
    assert generated.height == len(no_id)
    assert generated["test_key"].n_unique() == generated.height


def test_historical_enterprise_school_year_and_dates(reference_dir, district):
    star = reference_dir / "star"
    plain = star / ("powerschool_etl__RenNext_Historical_80col_plain_MDY__Historical_Star_Math_Enterprise_EOY23_"
                    "(English)_20230606_SM_V2_SCRUB.csv")
    quoted = star / "powerschool_etl__RenNext_Historical_80col_quoted__2023_2024_SRS.csv"
    a, _ = validate_file(ingest_file("star_math", plain, district), district)
    # a Spanish file, refused as SEL (test_real_star_file): its rows read as their own subject's
    b, _ = type_rows(bind_columns(ingest_file("star_early_literacy", quoted, district).frame, quoted.name), "SELS")
    rows_a = {r["student_link"]: r for r in a.frame.iter_rows(named=True)}
    rows_b = {r["student_link"]: r for r in b.iter_rows(named=True)}
    # "2022-2023 School Year" and "2023 - 2024" both become YYYY-YYYY.
    assert rows_a["10001"]["school_year"] == "2022-2023"
    assert rows_b["13999"]["school_year"] == "2023-2024"
    assert rows_a["10001"]["completed_at"] == dt.datetime(2023, 5, 30)
    assert rows_a["10002"]["completed_at"] == dt.datetime(2022, 9, 28)
    assert rows_b["13987"]["completed_at"] == dt.datetime(2024, 5, 8, 18, 35, 53)
    assert rows_a["10001"]["scaled_score"] == 163 and rows_a["10001"]["unified_score"] == 707
    assert rows_b["13999"]["percentile_rank"] == 21


@pytest.mark.parametrize(
    "name, source, expected",
    [
        (
            "powerschool_etl__SRS_v2_123col_EXCEL_MANGLED_dates__STARSpanishReading_Scrub_SRS_V2.csv",
            "star_reading",
            {"13753": dt.datetime(2022, 10, 5, 21, 44), "13231": dt.datetime(2022, 9, 23, 17, 48)},
        ),
        (
            "powerschool_etl__SR_v2_126col_EXCEL_MANGLED_dates__Scrubbed_SR_V2_Date_conforming.csv",
            "star_reading",
            {"13343": dt.datetime(2023, 10, 20, 16, 38), "13374": dt.datetime(2023, 10, 26, 18, 45)},
        ),
    ],
)
def test_excel_mangled_dates_parse_to_the_right_datetime(name, source, expected, reference_dir, district):
    validated, _ = validate_file(ingest_file(source, reference_dir / "star" / name, district), district)
    assert validated.rejected == {}
    got = dict(validated.frame.select("student_link", "completed_at").iter_rows())
    assert got == expected


def test_parse_dates_layouts():
    values = [
        "2023-05-02 19:38:53.763",
        "2023-08-21T17:28:05.852Z",
        "10/20/23 4:38 PM",
        "12/7/07 12:00 AM",
        "6/17/2020",
        "15-02-2003",
        "08-09-2019",
        "00:00.0",
        "51:23.7",
    ]
    got = pl.DataFrame({"t": values}).select(parse_dates(pl.col("t")).alias("d"))["d"].to_list()
    assert got == [
        dt.datetime(2023, 5, 2, 19, 38, 53, 763000),
        dt.datetime(2023, 8, 21, 17, 28, 5, 852000),
        dt.datetime(2023, 10, 20, 16, 38),
        dt.datetime(2007, 12, 7, 0, 0),
        dt.datetime(2020, 6, 17),
        dt.datetime(2003, 2, 15),
        None,  # 08-09-2019: August 9 or 8 September; refused, not guessed
        None,  # Excel mm:ss.0 display: the date is lost
        None,
    ]


def _rewrite_first_row(reference_dir: Path, tmp_path: Path, column_name: str, value: str) -> tuple[Path, list]:
    real = reference_dir / "star" / "powerschool_etl__SR_v2_126col_quoted__SR_v2_scrub.csv"
    header, records = read_records(real)
    assert len(header) == 126 and len(records) >= 2
    first, second = list(records[0]), list(records[1])
    first[header.index(column_name)] = value
    path = tmp_path / "SR.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL).writerows([header, first, second])
    return path, [header, first, second]


def test_unreadable_completed_date_is_a_counted_row_rejection(reference_dir, district, tmp_path):
    path, (header, _, second) = _rewrite_first_row(reference_dir, tmp_path, "CompletedDate", "00:00.0")
    validated, errors = validate_file(ingest_file("star_reading", path, district), district)
    assert validated.halted is None
    assert validated.rejected == {"unreadable or ambiguous CompletedDate": 1}
    assert validated.frame.height == 1
    assert validated.frame["source_row"].to_list() == [3]
    assert validated.frame["student_link"].to_list() == [second[header.index("StudentIdentifier")]]
    assert [(e.reason, e.row_count) for e in errors] == [("row_rejected", 1)]
    assert "unreadable or ambiguous CompletedDate" in errors[0].message
    assert "00:00.0" not in errors[0].message


def test_student_identifier_keeps_leading_zeros(reference_dir, district, tmp_path):
    path, _ = _rewrite_first_row(reference_dir, tmp_path, "StudentIdentifier", "000123")
    validated, _ = validate_file(ingest_file("star_reading", path, district), district)
    assert validated.rejected == {}
    assert validated.frame.filter(pl.col("source_row") == 2)["student_link"].to_list() == ["000123"]


SEL_V1 = "powerschool_etl__SEL_v1_112col_quoted_846rows__USE_THIS_RICHLAND_SEL_v1_Historical.csv"


def test_the_two_deactivated_tests_of_the_real_sel_v1_file_are_kept_flagged_without_scores(reference_dir, district):
    """docs/operations.md, "Deactivated tests": kept, AssessmentStatus Deactivated, no score of any kind."""
    path = reference_dir / "star" / SEL_V1
    header, records = read_records(path)
    status, assessment = header.index("AssessmentStatus"), header.index("AssessmentID")
    deactivated = sorted(r[assessment] for r in records if r[status] == "Deactivated")
    assert len(deactivated) == 2
    validated, _ = validate_file(ingest_file("star_early_literacy", path, district), district)
    frame = validated.frame
    flagged = frame.filter(pl.col("assessment_status") == "Deactivated").sort("test_key")
    assert flagged["test_key"].to_list() == deactivated
    assert flagged.select("scaled_score", "percentile_rank", "unified_score", "benchmark_category",
                          "deactivation_reason").null_count().row(0) == (2, 2, 2, 2, 2)
    assert set(frame["assessment_status"]) == {"Active", "Deactivated"}
    assert frame.filter(pl.col("assessment_status") == "Active")["scaled_score"].null_count() < frame.height - 2


@pytest.mark.parametrize("name, sent_as", [
    ("powerschool_etl__RenNext_Historical_80col_quoted__2023_2024_SRS.csv", "star_reading"),
    ("powerschool_etl__SM_v2_118col_quoted__SM_V2_scrub.csv", "star_reading"),
    ("powerschool_etl__SR_v2_126col_quoted__SR_v2_scrub.csv", "star_math"),
])
def test_a_real_star_file_of_another_subject_sent_under_a_name_is_halted(name, sent_as, reference_dir, district):
    """The subject came from the file's name alone: Early Literacy (or math) scores loaded as Star Reading."""
    src = ingest_file(sent_as, reference_dir / "star" / name, district)
    validated, errors = validate_file(src, district)
    assert validated.frame is None and validated.halted.reason == "wrong_file", validated.halted


def test_a_historical_export_of_several_years_keeps_its_current_grade_only_on_the_latest_years_tests():
    """The historical layout has `Current Grade`, the student's grade now: stored as the grade at the test, a 2020
    test of a student now in grade 5 read as a grade-5 test."""
    raw = pl.DataFrame({"Student Identifier": ["1", "1", "2"], "District Name": ["B"] * 3,
                        "School Year": ["2020-2021", "2023 - 2024", "2023-2024 School Year"],
                        "Activity Completed Date": ["9/15/2020", "9/15/2023", "9/16/2023"],
                        "Current Grade": ["5", "5", "3"], "Scaled Score": ["400", "600", "500"]})
    assert bind_columns(raw, "SM.csv")["grade"].to_list() == [None, "5", "3"]
    v2 = raw.rename({"Student Identifier": "StudentIdentifier", "District Name": "DistrictName",
                     "School Year": "SchoolYear", "Activity Completed Date": "CompletedDate",
                     "Current Grade": "Grade", "Scaled Score": "ScaledScore"})
    assert bind_columns(v2, "SM.csv")["grade"].to_list() == ["5", "5", "3"]  # v2's Grade is the test's


def test_a_historical_layouts_unlinked_students_are_read_again_under_the_names_link_review_asks_for():
    """The historical export writes "Student First Name", "Birthdate", "School Id": re-read with the v2 names, it
    had no link column, and its unlinked students were never suggested a counterpart."""
    from belleville_mtss.lib.sources.star import SOURCE
    from belleville_mtss.lib.students.suggest import people, read_people
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    district = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    body = ("School Year,District Name,Student Identifier,Student First Name,Student Last Name,Birthdate,School Id,"
            "Student Email,Activity Type,Scaled Score\n"
            "2026-2027,Belleville Public Schools,9210029,Ana,Cruz,1/2/2015,03,ana.cruz@x.org,"
            "Star Math Enterprise Tests,500\n").encode()
    frame = read_people("SM.csv", body, SOURCE, district)
    assert sorted(frame.columns) == sorted(["StudentIdentifier", *SOURCE.person.values()])
    assert people([frame], SOURCE, "StudentIdentifier", {"9210029": "SM"}) == [
        {"id": "9210029", "number": "9210029", "first_name": "Ana", "last_name": "Cruz", "birth_date": "1/2/2015",
         "school_id": "03", "email": "ana.cruz@x.org", "subjects": "SM"}]
