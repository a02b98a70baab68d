"""Star rows one at a time: each is loaded with the values it says, or rejected and counted with its reason (the
source row number and the reason only: never a value)."""
import csv
import datetime as dt
import io

import polars as pl
import pytest

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.district.registry import load_district
from belleville_mtss.lib.sources.star.reader import (
    STAR_COLUMNS, bind_columns, columns_to_read, detect_layout, parse_dates, star_columns, type_rows,
)

DISTRICT = load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml")
HEADER = list(STAR_COLUMNS.values())
GOOD_ROW = {
    "StudentRenaissanceID": "00000000-0000-0000-0000-000000000123",
    "StudentIdentifier": "000123", "DistrictName": "Belleville Public Schools", "SchoolName": "School No. 3",
    "SchoolYear": "2026-2027", "AssessmentID": "A-1", "CompletedDate": "2026-09-15 13:05:00.000", "Grade": "5",
    "ScaledScore": "850", "PercentileRank": "45", "UnifiedScore": "900",
    "RenaissanceBenchmarkCategoryName": "At/Above Benchmark", "ScreeningPeriodWindowName": "Fall",
    "AssessmentStatus": "Active", "DeactivationReason": "",
}


def star_file(rows: list[dict], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[{**GOOD_ROW, **r}.get(h, "") for h in header] for r in rows])
    return out.getvalue().encode()


def validate(rows: list[dict], name: str = "SR.csv", source: str = "star_reading", header: list[str] = HEADER):
    validated, errors = validate_file(ingest_file(source, io_path(name), DISTRICT, star_file(rows, header)), DISTRICT)
    assert validated.halted is None, validated.halted
    return validated, errors


def io_path(name: str):
    from pathlib import Path
    return Path(name)


def one_row(**values):
    """The one row's typed values, or its reason for being rejected."""
    validated, errors = validate([values])
    if validated.frame.height:
        assert validated.rejected == {} and errors == []
        return validated.frame.row(0, named=True)
    (reason,) = validated.rejected
    code = "value_too_long" if reason.startswith("value_too_long") else "row_rejected"
    assert [(e.reason, e.row_count, e.file_name) for e in errors] == [(code, 1, "SR.csv")]
    assert errors[0].message == f"SR.csv: 1 row(s) rejected: {reason}"
    return reason


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("ScaledScore", "1401", "ScaledScore out of range (0-1400)"),
    ("ScaledScore", "-1", "ScaledScore out of range (0-1400)"),
    ("ScaledScore", "85O", "ScaledScore is not a whole number"),
    ("ScaledScore", "850.5", "ScaledScore is not a whole number"),
    ("ScaledScore", "99999999999", "ScaledScore is not a whole number"),  # past any integer column: a row, not the file
    ("ScaledScore", "1e12", "ScaledScore is not a whole number"),
    ("PercentileRank", "101", "PercentileRank out of range (0-100)"),
    ("PercentileRank", "-1", "PercentileRank out of range (0-100)"),
    ("PercentileRank", "21.5", "PercentileRank is not a whole number"),  # never cut to 21
    ("PercentileRank", "< 1", "PercentileRank is not a whole number"),
    ("UnifiedScore", "2001", "UnifiedScore out of range (0-2000)"),
    ("UnifiedScore", "9OO", "UnifiedScore is not a whole number"),
    ("StudentIdentifier", "", "missing StudentIdentifier"),
    ("StudentIdentifier", " NA ", "missing StudentIdentifier"),
    ("CompletedDate", "", "missing CompletedDate"),
    ("CompletedDate", "na", "missing CompletedDate"),
    ("CompletedDate", "08-09-2019", "unreadable or ambiguous CompletedDate"),  # 9 August or 8 September
    ("CompletedDate", "12-08-2019", "unreadable or ambiguous CompletedDate"),  # 12 is a month too
    ("CompletedDate", "08-12-2019", "unreadable or ambiguous CompletedDate"),
    ("CompletedDate", "00:00.0", "unreadable or ambiguous CompletedDate"),
    ("SchoolYear", "2026", "unreadable SchoolYear"),
    ("DistrictName", "Na", "missing DistrictName"),
    ("AssessmentID", "A" * 121, "value_too_long: assessment_id longer than 120 characters "
                                "(dm.AssessmentResults.TestKey)"),
])
def test_a_bad_value_rejects_its_row_with_the_reason(column, value, reason):
    assert one_row(**{column: value}) == reason


@pytest.mark.parametrize(("column", "value", "field", "loaded"), [
    ("ScaledScore", "1400", "scaled_score", 1400),
    ("ScaledScore", "0", "scaled_score", 0),
    ("ScaledScore", " 850 ", "scaled_score", 850),
    ("ScaledScore", "NA", "scaled_score", None),  # Renaissance's blank
    ("PercentileRank", "100", "percentile_rank", 100),
    ("PercentileRank", "21.00", "percentile_rank", 21),  # a whole number written with decimals
    ("PercentileRank", "", "percentile_rank", None),
    ("UnifiedScore", "2000", "unified_score", 2000),
    ("UnifiedScore", "0", "unified_score", 0),
    ("StudentIdentifier", " 000123 ", "student_link", "000123"),
    ("DistrictName", " Belleville Public Schools ", "district_name", "Belleville Public Schools"),
    ("SchoolYear", "2026 - 2027", "school_year", "2026-2027"),
    ("SchoolYear", "SY 2026-2027", "school_year", "2026-2027"),
    ("AssessmentID", " A-7 ", "test_key", "A-7"),
    ("AssessmentID", "A" * 120, "test_key", "A" * 120),
    ("CompletedDate", "08-13-2019", "completed_at", dt.datetime(2019, 8, 13)),  # month first: 13 is no month
    ("CompletedDate", "13-08-2019", "completed_at", dt.datetime(2019, 8, 13)),  # day first: likewise
    ("CompletedDate", " 6/17/2020 ", "completed_at", dt.datetime(2020, 6, 17)),
    ("Grade", "K", "grade", "K"),
])
def test_a_good_value_loads_as_it_means(column, value, field, loaded):
    row = one_row(**{column: value})
    assert isinstance(row, dict), row
    assert row[field] == loaded


def test_a_loaded_row_keeps_every_column_and_its_source_row():
    validated, _ = validate([{}, {"ScaledScore": "1401"}, {"StudentIdentifier": "000124", "AssessmentID": "A-2"}])
    assert validated.rejected == {"ScaledScore out of range (0-1400)": 1}
    assert validated.to_link == 3  # the gate of files that link no row counts the refused one too
    assert validated.frame.rows(named=True) == [
        {"subject": "SR", "test_key": "A-1", "student_link": "000123", "district_name": "Belleville Public Schools",
         "school_name": "School No. 3", "school_year": "2026-2027", "completed_at": dt.datetime(2026, 9, 15, 13, 5),
         "grade": "5", "scaled_score": 850, "percentile_rank": 45, "unified_score": 900,
         "benchmark_category": "At/Above Benchmark", "screening_window": "Fall",
         "assessment_status": "Active", "deactivation_reason": None, "source_row": 2},
        {"subject": "SR", "test_key": "A-2", "student_link": "000124", "district_name": "Belleville Public Schools",
         "school_name": "School No. 3", "school_year": "2026-2027", "completed_at": dt.datetime(2026, 9, 15, 13, 5),
         "grade": "5", "scaled_score": 850, "percentile_rank": 45, "unified_score": 900,
         "benchmark_category": "At/Above Benchmark", "screening_window": "Fall",
         "assessment_status": "Active", "deactivation_reason": None, "source_row": 4},
    ]


def test_rejections_are_counted_per_reason_and_never_quote_a_value():
    validated, errors = validate([{"StudentIdentifier": ""}, {"ScaledScore": "99999"}, {"ScaledScore": "1401"}, {}])
    assert validated.rejected == {"ScaledScore out of range (0-1400)": 2, "missing StudentIdentifier": 1}
    assert validated.frame.height == 1
    assert [(e.reason, e.row_count, e.message) for e in errors] == [
        ("row_rejected", 2, "SR.csv: 2 row(s) rejected: ScaledScore out of range (0-1400)"),
        ("row_rejected", 1, "SR.csv: 1 row(s) rejected: missing StudentIdentifier"),
    ]


def test_a_test_without_an_assessment_id_is_keyed_by_subject_student_and_time():
    validated, _ = validate([{"AssessmentID": ""}, {"AssessmentID": "NA", "StudentIdentifier": "000124",
                                                     "CompletedDate": "2026-09-16 08:00:00.250"}, {}],
                            name="SM.csv", source="star_math")
    assert validated.frame["test_key"].to_list() == [
        "SM:000123:20260915130500000", "SM:000124:20260916080000250", "A-1"]
    assert validated.frame["subject"].to_list() == ["SM"] * 3


def test_the_historical_layout_binds_by_its_words():
    header = ["Student Identifier", "District Name", "School Name", "School Year", "Renaissance Activity ID",
              "Activity Completed Date", "Current Grade", "Scaled Score", "Percentile Rank", "Unified Scale",
              "Screening Window Name", "Lexile"]
    words = {"Student Identifier": "000123", "District Name": "Belleville Public Schools", "School Year": "2026-2027",
             "Renaissance Activity ID": "H-1", "Activity Completed Date": "9/15/2026", "Scaled Score": "612",
             "Percentile Rank": "7", "Unified Scale": "777", "Current Grade": "3", "School Name": "No. 8",
             "Screening Window Name": "Fall", "Lexile": "BR400L"}
    assert detect_layout(header) == "historical enterprise (12 columns)"
    validated, _ = validate([words], header=header)
    row = validated.frame.row(0, named=True)
    assert (row["test_key"], row["scaled_score"], row["percentile_rank"], row["unified_score"], row["grade"],
            row["school_name"], row["screening_window"], row["benchmark_category"]) == (
        "H-1", 612, 7, 777, "3", "No. 8", "Fall", None)
    assert row["completed_at"] == dt.datetime(2026, 9, 15)


def test_layouts_are_told_apart_and_other_star_files_refused():
    assert detect_layout(HEADER) == f"v2 family ({len(HEADER)} columns)"
    assert detect_layout(["a", "b"]) == "unknown"
    for marker, kind in [("DomainPercentMastery", "a Star Dashboard Standards file"),
                         ("SkillAreaMasteryScore", "a Star Skill Area file")]:
        assert detect_layout([*HEADER, marker]) == kind
        src = ingest_file("star_reading", io_path("SR.csv"), DISTRICT, star_file([{}], [*HEADER, marker]))
        validated, errors = validate_file(src, DISTRICT)
        assert validated.frame is None and errors == [validated.halted]
        assert (validated.halted.stage, validated.halted.reason) == ("validation", "wrong_file")
        assert validated.halted.message == (f"SR.csv is {kind}, not an overall results file (SR/SM/SEL); the file "
                                            "was halted, nothing from it is loaded")


def test_a_file_without_a_required_column_is_halted_naming_each():
    header = [h for h in HEADER if h not in ("CompletedDate", "SchoolYear")]
    src = ingest_file("star_reading", io_path("SR.csv"), DISTRICT, star_file([{}], header))
    validated, _ = validate_file(src, DISTRICT)
    assert validated.halted.reason == "missing_columns"
    assert validated.halted.message.startswith("SR.csv: missing required column(s) CompletedDate, SchoolYear;")


def test_optional_columns_absent_are_read_as_empty():
    header = [h for h in HEADER if h not in ("Grade", "UnifiedScore", "RenaissanceBenchmarkCategoryName")]
    validated, _ = validate([{}], header=header)
    row = validated.frame.row(0, named=True)
    assert (row["grade"], row["unified_score"], row["benchmark_category"], row["scaled_score"]) == (
        None, None, None, 850)


def test_another_link_column_is_bound_when_the_registry_names_it():
    raw = pl.DataFrame({**{h: [GOOD_ROW[h]] for h in HEADER}, "StudentStateID": ["NJ-77"]})
    bound = bind_columns(raw, "SR.csv", link="StudentStateID")
    assert bound["student_link"].to_list() == ["NJ-77"]
    typed, rejected = type_rows(bound.with_columns(pl.lit("").alias("student_link")), "SR", link="StudentStateID")
    assert rejected.rows() == [(2, "missing StudentStateID")] and typed.height == 0
    with pytest.raises(Exception, match="missing required column"):
        bind_columns(raw.drop("StudentStateID"), "SR.csv", link="StudentStateID")


def test_each_date_is_read_by_its_own_layout_when_a_file_mixes_them():
    # Excel re-saves mix layouts: the first values set the usual one, the others are still each read.
    values = ["2026-09-15 13:05:00.000"] * 3 + ["9/16/2026", "2026-09-17T08:00:00Z", "17-09-2026", "", None, "x"]
    got = pl.DataFrame({"t": values}).select(parse_dates(pl.col("t")))["t"].to_list()
    assert got == [dt.datetime(2026, 9, 15, 13, 5)] * 3 + [
        dt.datetime(2026, 9, 16), dt.datetime(2026, 9, 17, 8), dt.datetime(2026, 9, 17), None, None, None]


def test_repeated_dates_are_parsed_once_each_and_read_as_every_value_alone_would_be():
    # the same values, each repeated (a file's tests share their times): parsed by distinct value, joined back
    values = (["2026-09-15 13:05:00.000", "9/16/2026", "2026-09-17T08:00:00+02:00", "17-09-2026", "08-09-2019", "",
               None, "x", " 2026-09-18 "] * 3)[::-1]
    repeated = pl.DataFrame({"t": values}).select(parse_dates(pl.col("t")))["t"].to_list()
    alone = [pl.DataFrame({"t": [v]}, schema={"t": pl.Utf8}).select(parse_dates(pl.col("t")))["t"][0] for v in values]
    assert repeated == alone
    assert repeated[-3:] == [dt.datetime(2026, 9, 17, 6), dt.datetime(2026, 9, 16), dt.datetime(2026, 9, 15, 13, 5)]


def test_repeated_school_years_are_read_once_each_as_every_value_alone_would_be():
    # a file's school year is one or two values repeated: read by distinct value, mapped back to every row
    values = ["2026-2027", " 2025 - 2026 ", "", "2026", "SY 2024-2025"] * 3
    validated, _ = validate([{"SchoolYear": v, "AssessmentID": f"A-{i}"} for i, v in enumerate(values)])
    typed, rows = validated.frame, {}
    rows.update(zip(typed["source_row"], typed["school_year"]))
    alone = [one_row(SchoolYear=v) for v in values]
    read = [r["school_year"] if isinstance(r, dict) else None for r in alone]
    assert [rows.get(n) for n in range(2, len(values) + 2)] == read
    assert read[:5] == ["2026-2027", "2025-2026", None, None, "2024-2025"]
    assert validated.rejected == {"unreadable SchoolYear": 6}


def test_only_the_columns_we_use_are_read_from_a_star_file():
    # Renaissance exports carry names, emails and birth dates we never use: they are not even kept in memory.
    header = [*HEADER, "StudentFirstName", "StudentEmail", "Birthdate"]
    src = ingest_file("star_reading", io_path("SR.csv"), DISTRICT, star_file([{"StudentEmail": "a@x.org"}], header))
    assert set(src.frame.columns) == set(HEADER)


def test_without_a_registry_link_the_student_is_identified_by_studentidentifier():
    assert star_columns()["student_link"] == "StudentIdentifier"
    assert columns_to_read()(["StudentIdentifier", "StudentStateID", "Lexile"]) == {"StudentIdentifier"}
    raw = pl.DataFrame({h: [GOOD_ROW[h]] for h in HEADER}).with_columns(pl.lit(" ").alias("StudentIdentifier"))
    typed, rejected = type_rows(bind_columns(raw, "SR.csv"), "SR")
    assert rejected.rows() == [(2, "missing StudentIdentifier")] and typed.height == 0


def test_a_deactivated_test_keeps_its_reason_and_loses_its_scores_and_an_unknown_status_is_rejected():
    from belleville_mtss.lib.sources.star.reader import type_rows
    bound = pl.DataFrame({
        "student_link": ["1", "2", "3", "4"], "district_name": ["D"] * 4, "school_name": ["S"] * 4,
        "school_year": ["2026-2027"] * 4, "assessment_id": ["a", "b", "c", "d"],
        "completed_date": ["2026-10-01 09:00:00"] * 4, "grade": ["3"] * 4, "scaled_score": ["800"] * 4,
        "percentile_rank": ["50"] * 4, "unified_score": ["900"] * 4, "benchmark_category": ["At/Above"] * 4,
        "screening_window": ["Fall"] * 4, "assessment_status": ["Active", " deactivated ", "NA", "Pending"],
        "deactivation_reason": ["", "Student guessed", "NA", ""],
    })
    good, rejected = type_rows(bound, "SR")
    assert good.select("test_key", "assessment_status", "deactivation_reason", "scaled_score",
                       "benchmark_category").rows() == [
        ("a", "Active", None, 800, "At/Above"), ("b", "Deactivated", "Student guessed", None, None),
        ("c", "Active", None, 800, "At/Above")]
    assert rejected.rows() == [(5, "AssessmentStatus is not one of Active, Deactivated")]


def test_zoned_times_are_converted_to_utc_and_implausible_dates_are_rejected_with_their_reason():
    from belleville_mtss.lib.sources.star.reader import type_rows
    dates = ["2023-08-21T17:28:05.852Z", "2023-08-21T13:28:05+02:00", "2023-05-02 20:08:05.063", "0202-01-15",
             "2101-01-01 00:00:00", "1990-01-01"]
    n = len(dates)
    bound = pl.DataFrame({
        "student_link": [str(i) for i in range(n)], "district_name": ["D"] * n, "school_name": ["S"] * n,
        "school_year": ["2023-2024"] * n, "assessment_id": [f"a{i}" for i in range(n)], "completed_date": dates,
        "grade": ["3"] * n, "scaled_score": ["800"] * n, "percentile_rank": ["50"] * n, "unified_score": ["900"] * n,
        "benchmark_category": [None] * n, "screening_window": [None] * n, "assessment_status": ["Active"] * n,
        "deactivation_reason": [None] * n,
    }, schema_overrides={"benchmark_category": pl.Utf8, "screening_window": pl.Utf8,
                         "deactivation_reason": pl.Utf8})
    good, rejected = type_rows(bound, "SR")
    assert good["completed_at"].to_list() == [dt.datetime(2023, 8, 21, 17, 28, 5, 852000),
                                              dt.datetime(2023, 8, 21, 11, 28, 5),
                                              dt.datetime(2023, 5, 2, 20, 8, 5, 63000), dt.datetime(1990, 1, 1)]
    assert rejected.rows() == [(5, "CompletedDate outside 1990-2100"), (6, "CompletedDate outside 1990-2100")]


def test_a_historical_row_of_another_subject_is_refused_and_a_v2_file_of_another_subject_is_halted():
    """The subject came from the file's name alone: the historical layout is the same for every subject and names
    it on each row (Activity Type), and a v2 export's columns are its subject's own."""
    from belleville_mtss.lib.read.csvfile import FileRejected
    raw = pl.DataFrame({
        "Student Identifier": ["1", "2", "3"], "District Name": ["D"] * 3, "School Year": ["2025-2026"] * 3,
        "Renaissance Activity ID": ["a", "b", "c"], "Activity Completed Date": ["10/1/2025"] * 3,
        "Scaled Score": ["700"] * 3,
        "Activity Type": ["Star Math Enterprise Tests", "Star Reading Enterprise Tests", "Star Math Enterprise Tests"]})
    good, rejected = type_rows(bind_columns(raw, "SM.csv", subject="SM"), "SM")
    assert good["student_link"].to_list() == ["1", "3"]
    assert rejected.rows() == [(3, "Activity Type is not a Star SM test")]
    with pytest.raises(FileRejected, match="no row's Activity Type is a Star SEL test"):
        bind_columns(raw, "SEL.csv", subject="SEL")
    # a Spanish test is a subject of its own: mixed into the English test's, its scores (another scale) misled
    spanish = raw.with_columns(pl.lit("Star Early Literacy Spanish Enterprise Tests").alias("Activity Type"))
    with pytest.raises(FileRejected, match=r"no row's Activity Type is a Star SEL test \(SELS instead\)"):
        bind_columns(spanish, "SEL.csv", subject="SEL")
    mixed = raw.with_columns(pl.Series("Activity Type", ["Star Math Enterprise Tests", "Star Math Spanish Tests",
                                                         "Star Math Enterprise Tests"]))
    assert type_rows(bind_columns(mixed, "SM.csv", subject="SM"), "SM")[1].rows() == [
        (3, "Activity Type is not a Star SM test")]
    v2 = pl.DataFrame({h: [GOOD_ROW[h]] for h in HEADER}).with_columns(pl.lit("500Q").alias("Quantile"))
    with pytest.raises(FileRejected, match="its columns are a Star SM export's"):
        bind_columns(v2, "SR.csv", subject="SR")
    assert bind_columns(v2, "SM.csv", subject="SM").height == 1


def test_rows_of_one_identifier_under_two_renaissance_students_are_refused_all_of_them():
    """Two children under one StudentIdentifier (two schools' local ids colliding in Renaissance): the second
    child's tests loaded under the first. Renaissance's own id tells them apart; a blank one names no one."""
    validated, errors = validate([
        {"StudentRenaissanceID": "R-1", "AssessmentID": "A-1"},
        {"StudentRenaissanceID": "R-2", "AssessmentID": "A-2"},  # another child, same identifier
        {"StudentRenaissanceID": "R-3", "StudentIdentifier": "000124", "AssessmentID": "A-3"},
        {"StudentRenaissanceID": "R-3", "StudentIdentifier": "000124", "AssessmentID": "A-4"},
        {"StudentRenaissanceID": "", "StudentIdentifier": "000124", "AssessmentID": "A-5"},
    ])
    assert validated.frame["test_key"].to_list() == ["A-3", "A-4", "A-5"]
    assert validated.rejected == {"StudentIdentifier of two Renaissance students": 2}
    assert [e.message for e in errors] == ["SR.csv: 2 row(s) rejected: StudentIdentifier of two Renaissance students"]


def test_copies_of_one_test_that_disagree_are_refused_all_of_them_and_agreeing_copies_kept():
    """A test listed twice (a student under two classes): the first copy was loaded whatever the second said, and a
    copy with another score put a wrong score in the warehouse, unsaid."""
    validated, errors = validate([
        {"AssessmentID": "A-1", "ScaledScore": "1300", "PercentileRank": "99"},
        {"AssessmentID": "A-1"},  # the real one, second
        {"AssessmentID": "A-2", "SchoolName": "School No. 5"},
        {"AssessmentID": "A-2"},  # the same test under another school: what is stored of it agrees
        {"AssessmentID": "A-3", "CompletedDate": "2026-09-16 08:00:00.000"},
        {"AssessmentID": "A-3"},
    ])
    assert validated.frame["test_key"].to_list() == ["A-2", "A-2"]  # kept once, as the results are built
    assert validated.rejected == {"copies of one test that disagree (scores, date or status)": 4}
    assert [e.row_count for e in errors] == [4]


def test_a_star_export_in_windows_1252_reads_where_the_section_declares_it():
    """The section's `encoding` was read by every screener's reader but Star's: a Star file re-saved from Excel was
    halted on every drop, whatever the registry said."""
    from pathlib import Path

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import ingest_file
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    star = entry.sources["star"].model_copy(update={"encoding": "windows-1252"})
    district = entry.model_copy(update={"sources": {**entry.sources, "star": star}})
    body = ",".join(HEADER) + "\n" + ",".join(GOOD_ROW[h] for h in HEADER) + "\n"
    body = body.replace(GOOD_ROW["DistrictName"], "Escuelas de Peñuelas").encode("windows-1252")
    read = ingest_file("star_reading", Path("SR.csv"), district, body)
    assert read.halted is None and read.frame["DistrictName"].to_list() == ["Escuelas de Peñuelas"]
    assert ingest_file("star_reading", Path("SR.csv"), entry, body).halted.reason == "encoding"
