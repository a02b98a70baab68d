"""mCLASS DIBELS 8 (lib/sources/dibels8/): the public sample read to exactly its rows and measures; nothing that
says who the student is kept; bad rows refused with their reasons."""
import csv
import datetime as dt
from pathlib import Path

import polars as pl

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
from belleville_mtss.lib.load.warehouse import assessment_results, read_table, replace_results, results_scopes
from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.sources.dibels8 import MEASURE, Dibels8Section

SAMPLE = "assessments/mclass_dibels8__benchmark_sample_anonymized.csv"
WHO = ("Student Last Name", "Student First Name", "Student Middle Name", "Date of Birth", "Gender", "Race",
       "Special Education", "ELL Status", "Home Language", "Reporting Class Name", "Official Teacher Name",
       "Assessing Teacher Name", "Primary ID - Student ID (State ID)")


def _district(**section):
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    return entry.model_copy(update={"sources": {**entry.sources, "dibels8": Dibels8Section(**section)}})


def test_the_public_sample_reads_to_exactly_its_rows_and_measures(reference_dir):
    path = reference_dir / SAMPLE
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    district = _district()
    validated, errors = validate_file(ingest_file("dibels8", path, district), district)
    assert errors == [] and validated.rejected == {} and validated.rows == len(rows) == 5
    for got, row in zip(validated.frame.iter_rows(named=True), rows):
        assert got["student_link"] == row["Student Primary ID"] and got["district_name"] == row["District Name"]
        assert (got["school_year"], got["screening_window"]) == (row["School Year"], "Fall")  # BOY
        assert got["scaled_score"] == int(row["Composite Score"])
        assert got["percentile_rank"] == int(row["Composite - National Norm Percentile"])
        assert got["benchmark_category"] == row["Composite Level"] and got["grade"] == row["Assessment Grade"]
        assert got["completed_at"].strftime("%Y-%m-%d") == row["Client Date"]
        kept = {s["name"]: s["value"] for s in got["scores"]}
        assert kept == {k: v for k, v in row.items() if v and MEASURE.search(k) and k not in (
            "Composite Score", "Composite - National Norm Percentile", "Composite Level", "Assessment Grade")}
        assert kept["Letter Names (LNF) - Score"] == row["Letter Names (LNF) - Score"]
        assert not set(kept) & set(WHO)
    assert validated.frame["test_key"].to_list()[0] == "605000:2023-2024:BOY:K"  # the benchmark's grade, K


def test_each_bad_row_is_refused_with_its_reason_and_a_missing_column_halts():
    district = _district()
    header = "School Year,District Name,Student Primary ID,Benchmark Period,Client Date,Composite Score,Student Last Name\n"
    body = header + ("2025-2026,Belleville,1,MOY,2026-01-20,310,Smith\n"
                     "2025-2026,Belleville,2,MID,2026-01-20,310,Jones\n"
                     "2025-2026,Belleville,3,MOY,20.01.2026,310,Brown\n"
                     "2025-2026,Belleville,4,MOY,2026-01-20,high,Green\n")
    validated, _ = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, body.encode()), district)
    assert validated.rows == 1 and validated.frame["screening_window"].to_list() == ["Winter"]
    # the SFTP export's Device Date is the Client Date
    sftp, _ = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, body.replace(
        "Client Date", "Device Date").encode()), district)
    assert sftp.rows == 1 and sftp.frame["completed_at"].dt.date().to_list() == [dt.date(2026, 1, 20)]
    # a US Excel re-save writes the Client Date month/day/year: read as such
    resaved, _ = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, body.replace(
        "2026-01-20", "1/20/2026").encode()), district)
    assert resaved.frame["completed_at"].dt.date().to_list() == [dt.date(2026, 1, 20)]
    assert validated.frame["scores"][0].to_list() == []  # the name column is never a score
    assert validated.rejected == {"Benchmark Period is not BOY, MOY or EOY": 1,
                                  "unreadable Client Date (year-month-day, or month/day/year)": 1,
                                  "Composite Score is not a whole number": 1}
    halted, _ = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, header.replace(
        ",Composite Score", "").encode() + b"2025-2026,B,1,MOY,2026-01-20,Smith\n"), district)
    assert halted.halted.reason == "missing_columns" and "Composite Score" in halted.halted.message


def test_an_off_grade_benchmark_beside_the_students_own_and_a_row_printed_twice_are_each_one_benchmark():
    """Two rows of one student in a period were both refused: a row printed twice lost the child's benchmark, and
    an off-grade benchmark (the public sample gives a grade-2 student the K one) beside their own lost both."""
    district = _district()
    body = ("School Year,District Name,Student Primary ID,Benchmark Period,Client Date,Composite Score,"
            "Assessment Grade\n"
            "2025-2026,Belleville,1,BOY,2025-09-20,310,K\n2025-2026,Belleville,1,BOY,2025-09-21,350,2\n"
            "2025-2026,Belleville,2,BOY,2025-09-20,400,1\n2025-2026,Belleville,2,BOY,2025-09-20,400,1\n"
            "2025-2026,Belleville,3,BOY,2025-09-20,400,1\n2025-2026,Belleville,3,BOY,2025-09-20,401,1\n")
    validated, _ = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, body.encode()), district)
    assert validated.frame.select("student_link", "grade", "scaled_score").rows() == [
        ("1", "K", 310), ("1", "2", 350), ("2", "1", 400)]
    assert validated.rejected == {"a repeat of an earlier row's benchmark (student, period and grade)": 1,
                                  "copies of one benchmark (student, period and grade) that disagree": 2}


def test_a_benchmark_periods_drop_replaces_that_period_and_keeps_the_others(engine):
    """mCLASS exports arrive a benchmark period at a time: the MOY drop deleted every BOY benchmark of the year (the
    shrink gate compares rows, and a MOY file as long as the BOY file passed it)."""
    from belleville_mtss_tests.test_warehouse import _frame
    boy = _frame().with_columns(pl.lit("dibels8").alias("Assessment"), pl.lit("DIBELS 8th Edition").alias("Subject"))
    moy = boy.with_columns(pl.lit("Winter").alias("ScreeningWindow"), pl.col("TestKey") + ":MOY")
    assert results_scopes(moy) == [("dibels8", "DIBELS 8th Edition", "2026-2027", "Winter")]
    replace_results(engine, 107873, boy)
    replace_results(engine, 107873, moy)
    replace_results(engine, 107873, moy.head(2))  # a correction of MOY replaces MOY alone
    held = read_table(engine, assessment_results)["ScreeningWindow"].value_counts().sort("ScreeningWindow")
    assert held.rows() == [("Fall", 6), ("Winter", 2)]


def test_a_student_not_yet_benchmarked_is_no_result_and_no_refusal():
    """mCLASS lists every enrolled student; those not yet tested have no Client Date and no Composite Score: they were
    refused as unreadable dates, hundreds early in a window, hiding a real one."""
    district = _district()
    body = ("School Year,District Name,Student Primary ID,Benchmark Period,Client Date,Composite Score\n"
            "2025-2026,Belleville,1,MOY,,\n"
            "2025-2026,Belleville,4,MOY,2026-01-21,\n"
            "2025-2026,Belleville,2,MOY,2026-01-20,310\n"
            "2025-2026,Belleville,3,MOY,20.01.2026,300\n")
    validated, errors = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, body.encode()),
                                      district)
    assert validated.frame["student_link"].to_list() == ["2"] and validated.frame["source_row"].to_list() == [4]
    # a date that is there, unread; a benchmark begun (its measures given) without its composite yet, said as such
    assert validated.rejected == {"unreadable Client Date (year-month-day, or month/day/year)": 1,
                                  "benchmark not finished: no Composite Score yet (loaded once it has one)": 1}
    assert sorted(e.row_count for e in errors) == [1, 1]


def test_a_file_of_students_not_yet_benchmarked_has_nothing_to_link_and_blocks_nothing(settings):
    """Early in a window every row can be a student not yet benchmarked: no test to link, so the gate of files that
    link no row (which counted the file's rows) must not block the drop's roster and Star tests."""
    import datetime as dt_
    from belleville_mtss.lib.load.migrations import open_warehouse
    from belleville_mtss.lib.load.warehouse import make_engine
    from belleville_mtss.lib.pipeline import files_in, process_drop
    from belleville_mtss.lib.read.theirs import read_account_info, read_classlink_students
    from ...helpers import prepare_drop
    drop = prepare_drop(settings)
    district = _district(names=["Belleville Public Schools"])
    numbers = pl.read_csv(drop / "students.csv", infer_schema=False)[:, 0].head(3).to_list()  # any ids: none tested
    (drop / "dibels8_benchmark.csv").write_text(
        "School Year,District Name,Student Primary ID,Benchmark Period,Client Date,Composite Score\n"
        + "".join(f"2026-2027,Belleville Public Schools,{n},BOY,,\n" for n in numbers))
    warehouse, prod = open_warehouse(settings.warehouse_url, settings.embedded_warehouse), \
        make_engine(settings.prod_db_url)
    try:
        core = process_drop(files_in(drop, district), district,
                            read_classlink_students(prod, district.source_names.classlink, []),
                            read_account_info(warehouse), "belleville/2026-11-01", today=dt_.date.today())
    finally:
        warehouse.dispose()
        prod.dispose()
    assert core.validated["dibels8"].to_link == 0 and core.validated["dibels8"].frame.is_empty()
    assert {c.name: c.passed for c in core.checks}["assessment_files_linked"] is True, core.stopped
    assert core.stopped is None and core.roster.height and core.results.height


def test_a_row_of_another_edition_is_refused_and_every_result_is_stored_under_dibels_8():
    """The subject is stored and named in messages: Lectura's scores are on another scale, and a shifted cell (a
    student's name) loaded as a subject of its own, shown in metadata, the error table and alerts."""
    district = _district()
    header = ("School Year,District Name,Student Primary ID,Benchmark Period,Client Date,Composite Score,"
              "Assessment Edition\n")
    body = header + ("2025-2026,Belleville,1,MOY,2026-01-20,310,DIBELS 8th Edition\n"
                     "2025-2026,Belleville,2,MOY,2026-01-20,310,mCLASS Lectura\n"
                     "2025-2026,Belleville,3,MOY,2026-01-20,310,Zzqmarker Smith\n"
                     "2025-2026,Belleville,4,MOY,2026-01-20,310,\n")
    validated, errors = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, body.encode()),
                                      district)
    assert validated.frame.select("student_link", "subject").rows() == [("1", "DIBELS 8th Edition"),
                                                                        ("4", "DIBELS 8th Edition")]
    assert validated.rejected == {"Assessment Edition is not DIBELS 8th Edition": 2}
    assert errors and not any("zzqmarker" in repr(e).lower() for e in errors)
    # a dual-language student benchmarked in both editions in one period: the Lectura row is no copy of the DIBELS 8
    # one (both were refused as copies that disagree, and the period's load deleted the benchmark held)
    both = header + ("2025-2026,Belleville,1,MOY,2026-01-20,310,DIBELS 8th Edition\n"
                     "2025-2026,Belleville,1,MOY,2026-01-21,250,mCLASS Lectura\n")
    validated, _ = validate_file(ingest_file("dibels8", Path("dibels8_BM.csv"), district, both.encode()), district)
    assert validated.frame.select("student_link", "scaled_score").rows() == [("1", 310)]
    assert validated.rejected == {"Assessment Edition is not DIBELS 8th Edition": 1}
