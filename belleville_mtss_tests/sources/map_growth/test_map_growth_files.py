"""NWEA MAP Growth (lib/sources/map_growth/): the public sample read to exactly its rows and scores, and each
refusal said with its reason."""
import csv
from pathlib import Path

import pytest

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.sources.map_growth import IDENTIFYING, OURS, MapGrowthSection

from ...conftest import one_backend

SAMPLE = "assessments/nwea_map_growth__AssessmentResults_sample_anonymized.csv"


def _district(**section):
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    return entry.model_copy(update={"sources": {**entry.sources, "map_growth": MapGrowthSection(**section)}})


def _read(path: Path, data: bytes | None = None, **section):
    district = _district(**section)
    return validate_file(ingest_file("map_growth", path, district, data), district)


def test_the_public_sample_reads_to_exactly_its_rows_and_scores(reference_dir):
    path = reference_dir / SAMPLE
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    validated, errors = _read(path)
    assert errors == [] and validated.rejected == {} and validated.rows == len(rows) == 7
    frame = validated.frame
    for got, row in zip(frame.iter_rows(named=True), rows):
        # the RIT scale: the sample's screener is Language Arts, Course Reading K-2
        scale = {"Language Arts": "Reading"}.get(row["Subject"], row["Subject"])
        assert got["student_link"] == row["StudentID"] and got["subject"] == scale
        assert got["scaled_score"] == int(row["TestRITScore"]) and got["percentile_rank"] == int(row["TestPercentile"])
        assert got["benchmark_category"] == row["AchievementQuintile"] and got["district_name"] == row["DistrictName"]
        assert got["school_year"] == "2021-2022" and got["screening_window"] == "Fall"
        assert got["completed_at"].strftime("%m/%d/%Y %H:%M:%S") == f"{row['TestStartDate']} {row['TestStartTime']}"
        # every other non-empty value of the row, under its header; nothing that says who the student is
        kept = {k: v for k, v in row.items() if v and k not in OURS and k not in IDENTIFYING}
        assert {s["name"]: s["value"] for s in got["scores"]} == kept
    # keys: the student's with NWEA's TestID, or (the screener without one) its subject and start time
    assert frame["test_key"].to_list()[:2] == ["605000:711521234", "605001:711524321"]
    assert frame["test_key"].to_list()[-1] == "605000:Language Arts:20210920091530"
    assert frame["test_key"].is_unique().all()


HEADER = "TermName,DistrictName,StudentID,Student_StateID,MeasurementScale,Discipline,TestID,TestStartDate,TestStartTime,TestRITScore,TestPercentile,Goal1Name,Goal1RitScore\n"


def test_an_older_export_and_each_bad_row_is_refused_with_its_reason(tmp_path):
    body = HEADER + "".join([
        "Winter 2025-2026,Belleville Public Schools,101,9101,Mathematics,Math K-12,T1,01/12/2026,10:00:00,201,55,Geometry,199\n",
        "Winter 2025-2026,Belleville Public Schools,,9102,Mathematics,Math K-12,T2,01/12/2026,10:00:00,201,55,,\n",
        "Winter 2025-2026,Belleville Public Schools,103,9103,Mathematics,Math K-12,T3,2026-01-12,10:00:00,201,55,,\n",
        "Winter 2025-2026,Belleville Public Schools,104,9104,Mathematics,Math K-12,T4,01/12/2026,10:00:00,20x,55,,\n",
        "Winter 2025-2026,Belleville Public Schools,105,9105,Mathematics,Math K-12,T5,01/12/2026,10:00:00,420,55,,\n",
        "Winter 2025-2026,Belleville Public Schools,106,9106,Mathematics,Math K-12,T6,01/12/2026,10:00:00,201,100,,\n",
    ])
    validated, errors = _read(Path("AssessmentResults.csv"), body.encode())
    assert validated.rows == 1 and validated.frame["subject"].to_list() == ["Mathematics"]  # MeasurementScale
    assert validated.frame["course"].to_list() == ["Math K-12"]  # Discipline
    assert validated.frame["scores"][0].to_list() == [{"name": "Goal1Name", "value": "Geometry"},
                                                      {"name": "Goal1RitScore", "value": "199"}]
    assert validated.rejected == {"missing StudentID": 1, "unreadable TestStartDate (month/day/year)": 1,
                                  "TestRITScore is not a whole number": 1, "TestRITScore out of range (100, 350)": 1,
                                  "TestPercentile is not a whole number in (1, 99)": 1}
    assert "9101" not in str(validated.frame["scores"].to_list())  # a state id is never kept as a score


def test_a_test_listed_twice_refuses_its_repeat_not_the_file():
    """One student's test twice in an export: the repeat is refused with its reason, the rest of the file loads (the
    model's unique key halted the whole file, every other student's tests with it)."""
    row = ("Winter 2025-2026,Belleville Public Schools,{0},910{0},Mathematics,Math K-12,T{0},01/12/2026,10:00:00,"
           "201,55,,\n")
    body = HEADER + row.format(1) + row.format(1) + row.format(2)
    validated, errors = _read(Path("AssessmentResults.csv"), body.encode())
    assert validated.usable and validated.frame["student_link"].to_list() == ["1", "2"]
    assert validated.rejected == {"a repeat of an earlier row's test (StudentID and TestID)": 1}
    assert [e.reason for e in errors] == ["row_rejected"]


def test_a_start_time_an_excel_re_save_wrote_is_read_and_an_unreadable_one_is_named_as_the_time():
    """A US Excel re-save writes TestStartTime as 9:57:27 AM (or 9:57): every row was refused, blamed on the date,
    and the drop blocked as if no student linked."""
    row = "Winter 2025-2026,Belleville Public Schools,{0},910{0},Mathematics,Math K-12,T{0},1/12/2026,{1},201,55,,\n"
    times = ["9:57:27 AM", "1:05:00 PM", "9:57", "10:00:00", "25:61"]
    body = HEADER + "".join(row.format(i, t) for i, t in enumerate(times, 1))
    validated, _ = _read(Path("AssessmentResults.csv"), body.encode())
    assert validated.frame["completed_at"].dt.strftime("%H:%M:%S").to_list() == [
        "09:57:27", "13:05:00", "09:57:00", "10:00:00"]
    assert validated.rejected == {"unreadable TestStartTime (hour:minute:second, or an Excel re-save's 9:57:27 AM)": 1}


def test_a_file_without_a_required_column_is_halted_naming_it():
    validated, errors = _read(Path("AssessmentResults.csv"), b"TermName,StudentID,Subject\nFall 2025-2026,1,Math\n")
    assert validated.halted is not None and validated.halted.reason == "missing_columns"
    assert "TestStartDate, TestRITScore" in validated.halted.message


def test_the_link_is_the_registrys_choice_of_column():
    body = (HEADER + "Winter 2025-2026,B,101,9101,Mathematics,Math K-12,T1,01/12/2026,10:00:00,201,55,,\n").encode()
    validated, _ = _read(Path("AssessmentResults.csv"), body, link="Student_StateID")
    assert validated.frame["student_link"].to_list() == ["9101"]
    with pytest.raises(ValueError):
        MapGrowthSection(link="StudentName")


@one_backend
def test_a_drop_with_map_growth_beside_star_loads_each_under_its_assessment_and_a_replay_changes_nothing(
        backend, tmp_path):
    import polars as pl

    from belleville_mtss.lib.load.warehouse import assessment_results, assessment_scores, make_engine, read_table
    from belleville_mtss.run import run_drop

    from ...conftest import make_settings
    from ...helpers import edited_registry, errors, prepare_drop

    registry = edited_registry(tmp_path, lambda e: e["sources"].update(
        map_growth={"names": ["Belleville Public Schools"]}))
    settings = make_settings(backend.home, MTSS_DISTRICTS_DIR=str(registry), MTSS_WAREHOUSE_URL=backend.warehouse_url,
                             MTSS_PROD_DB_URL=backend.prod_db_url)
    drop = prepare_drop(settings)
    numbers = pl.read_csv(drop / "students.csv", infer_schema=False)["STUDENTS.STUDENT_NUMBER"].to_list()[:40]
    rows = [f"Fall 2026-2027,Belleville Public Schools,{n},Mathematics,Math 6+,T{i},09/21/2026,09:00:00,"
            f"{200 + i % 50},{1 + i % 99},Number Sense,{190 + i % 40}\n" for i, n in enumerate(numbers)]
    rows.append("Fall 2026-2027,Belleville Public Schools,99999999,Mathematics,Math 6+,TX,09/21/2026,09:00:00,210,50,,\n")
    (drop / "AssessmentResults.csv").write_text(
        "TermName,DistrictName,StudentID,Subject,Course,TestID,TestStartDate,TestStartTime,TestRITScore,"
        "TestPercentile,Goal1Name,Goal1RitScore\n" + "".join(rows))

    def held() -> tuple[dict, pl.DataFrame]:
        engine = make_engine(settings.warehouse_url)
        try:
            results = read_table(engine, assessment_results)
            return (dict(results.group_by("Assessment").len().iter_rows()),
                    read_table(engine, assessment_scores).drop("LoadedAt").sort("TestKey", "ScoreName"))
        finally:
            engine.dispose()

    first = run_drop(settings)
    assert first.outcome == "loaded", first.render()
    assert first.links["map_growth_link"] == {"rows": 41, "linked_rows": 40, "match_rate": round(40 / 41, 4)}
    counts, scores = held()
    assert counts["map_growth"] == 40 and counts["star"] > 0
    assert scores.filter(pl.col("ScoreName") == "Goal1RitScore").height == 40  # every goal kept, per test
    unknown = errors(settings).filter((pl.col("Reason") == "unknown_student") &
                                      (pl.col("FileName") == "AssessmentResults.csv"))
    assert unknown["RowCount"].to_list() == [1] and "MAP Growth row(s) for a StudentID" in unknown["Message"][0]
    assert run_drop(settings).outcome == "loaded"  # the replay: the same rows and scores, once each
    again, again_scores = held()
    assert again == counts and again_scores.equals(scores)


def test_a_score_longer_than_the_scores_table_holds_refuses_its_row_not_the_load():
    body = ("TermName,StudentID,Subject,TestID,TestStartDate,TestStartTime,TestRITScore,Goal1Name\n"
            "Fall 2025-2026,1,Mathematics,T1,09/10/2025,09:00:00,200," + "y" * 200 + "\n"
            "Fall 2025-2026,2,Mathematics,T2,09/10/2025,09:00:00,200," + "x" * 201 + "\n"
            # NVARCHAR counts a character above U+FFFF as two: 200 units fit, 201 do not (199 characters do not)
            "Fall 2025-2026,3,Mathematics,T3,09/10/2025,09:00:00,200," + "y" * 198 + "\U0001F600\n"
            "Fall 2025-2026,4,Mathematics,T4,09/10/2025,09:00:00,200," + "x" * 199 + "\U0001F600\n")
    validated, _ = _read(Path("AssessmentResults.csv"), body.encode())
    assert validated.frame["student_link"].to_list() == ["1", "3"]  # 200 units: dm.AssessmentScores holds them
    assert validated.rejected == {"value_too_long: a score's value longer than 200 characters, more than "
                                  "dm.AssessmentScores.ScoreValue holds": 2}


def test_a_result_is_stored_under_its_rit_scale_in_either_layout():
    """Newer exports put Reading and Language Usage under Subject "Language Arts", older ones name the scale: the two
    scales were one subject, and an export whose layout changed held the same tests twice, under two subjects."""
    newer = ("TermName,StudentID,Subject,Course,TestID,TestStartDate,TestStartTime,TestRITScore\n"
             "Fall 2025-2026,1,Language Arts,Reading,T1,09/15/2025,10:00:00,201\n"
             "Fall 2025-2026,1,Language Arts,Language Usage 2-12,T2,09/15/2025,11:00:00,188\n"
             "Fall 2025-2026,1,Language Arts,Reading K-2,T3,09/15/2025,12:00:00,170\n"
             "Fall 2025-2026,1,Science,Science K-12,T4,09/16/2025,10:00:00,205\n"
             "Fall 2025-2026,1,Mathematics,Math K-12,T5,09/16/2025,11:00:00,210\n")
    older = newer.replace("Subject,Course", "MeasurementScale,Discipline").replace(
        "Language Arts,Reading,", "Reading,Reading,").replace("Language Arts,Language Usage 2-12", "Language Usage,"
        "Language").replace("Language Arts,Reading K-2", "Reading,Reading").replace("Science,Science K-12",
                                                                                     "General Science,Science")
    for body in (newer, older):
        validated, _ = _read(Path("AssessmentResults.csv"), body.encode())
        assert validated.frame.select("test_key", "subject").rows() == [
            ("1:T1", "Reading"), ("1:T2", "Language Usage"), ("1:T3", "Reading"), ("1:T4", "Science"),
            ("1:T5", "Mathematics")], body


def test_a_row_whose_subject_is_no_rit_scale_is_refused_and_its_text_never_said():
    """A subject is stored and named in messages (a scope: "map_growth Reading 2026-2027 Fall"): a shifted cell's
    student name loaded as a subject of its own and was shown in metadata, the error table and alerts."""
    body = ("TermName,StudentID,MeasurementScale,Discipline,TestID,TestStartDate,TestStartTime,TestRITScore\n"
            "Fall 2025-2026,1,Mathematics,Math K-12,T1,09/15/2025,10:00:00,201\n"
            "Fall 2025-2026,2,Zzqmarker Smith,Math K-12,T2,09/15/2025,10:00:00,201\n"
            "Fall 2025-2026,3,Language Arts,Writing,T3,09/15/2025,10:00:00,201\n"
            # an older export's science scales: the norms' Science, and the retired one kept as named
            "Fall 2025-2026,4,Science - General Science,Science,T4,09/15/2025,10:00:00,201\n"
            "Fall 2025-2026,5,Science - Concepts and Processes,Science,T5,09/15/2025,10:00:00,201\n")
    validated, errors = _read(Path("AssessmentResults.csv"), body.encode())
    assert validated.frame["subject"].to_list() == ["Mathematics", "Science", "Science - Concepts and Processes"]
    assert validated.rejected == {"Subject is none of NWEA's MAP Growth subjects (Mathematics, Reading, Language "
                                  "Usage, Science, ...; Language Arts with a Reading or Language Usage Course)": 2}
    assert errors and not any("zzqmarker" in repr(e).lower() for e in errors)
