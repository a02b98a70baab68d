"""A district that screens with MAP Growth, i-Ready, DIBELS 8 and FastBridge (no Star), as a person brings it in:
`districts onboard` on its sample drop, sign-off, then runs; and the same guarantees over time that Star has
(a replay, an older drop, a student who left, results that shrink), for MAP Growth and i-Ready. Real SQLite and
PostgreSQL; every file generated in its vendor's real layout (lib/sources/<vendor>/sample.py)."""
import csv
import dataclasses
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from belleville_mtss.cli import main
from belleville_mtss.lib.load.warehouse import assessment_results, make_engine, read_table, student_roster
from belleville_mtss.lib.sources import BY_NAME
from belleville_mtss.lib.sources.iready import FILES as IREADY_FILES
from belleville_mtss.lib.sample import PECAN_VALLEY, REFUSED_SCORE, SampleSpec
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import errors, new_district, sign_off

SCREENERS = ("map_growth", "iready", "dibels8", "fastbridge")
# The demo's second district (lib/sample.py), here with FastBridge too and two refused rows in each file
PECAN = dataclasses.replace(PECAN_VALLEY, students=300, without_tests=6, unknown_star_rows=3, refused_rows=2,
                            missing_from_classlink=5, sources=SCREENERS)
# Each vendor's file(s) as generated, with the column a test's identifier and its score are in, and (FastBridge)
# the screening periods whose filled score is one test event.
SCORE = {"map_growth": ("StudentID", ["TestRITScore"]), "iready": ("Student ID", ["Overall Scale Score"]),
         "dibels8": ("Student Primary ID", ["Composite Score"]),
         "fastbridge": ("Local ID", [f"{p} {{s}} Test Theta" for p in ("Fall", "Winter", "Spring", "Screening Period 4",
                                                                       "Screening Period 5")])}
FILES = {"map_growth": ["AssessmentResults.csv"], "iready": ["diagnostic_results_ela.csv",
                                                             "diagnostic_results_math.csv"],
         "dibels8": ["dibels8_benchmark.csv"], "fastbridge": ["FastBridge_aMath.csv", "FastBridge_aReading.csv"]}


def expected(drop: Path, source: str, roster: set[str]) -> tuple[int, int, set[str]]:
    """From the files alone (the csv module): (test events of roster students, events whose score is refused,
    identifiers no roster student has)."""
    id_column, scores = SCORE[source]
    events = refused = 0
    unknown = set()
    for name in FILES[source]:
        subject = name.removesuffix(".csv").rsplit("_", 1)[-1]
        with (drop / name).open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                filled = [row[c.format(s=subject)] for c in scores if row.get(c.format(s=subject))]
                if row[id_column] not in roster:
                    unknown.add(row[id_column])
                else:  # each filled score is a test event (FastBridge: one per screening period)
                    refused += filled.count(REFUSED_SCORE)
                    events += len(filled) - filled.count(REFUSED_SCORE)
    return events, refused, unknown


@pytest.fixture
def pecan(backend, tmp_path, monkeypatch):
    """Pecan Valley's sample drop in its folder and its ClassLink users; no registry entry (dm.AccountInfo holds
    PECAN VALLEY ISD, TX, 666001)."""
    return new_district(backend, tmp_path, monkeypatch, PECAN)


def test_a_four_screener_district_onboarded_signed_off_and_run_loads_exactly_its_tests(pecan, capsys):
    settings, registry, drop = pecan
    out = registry / "pecan.yaml"
    code = main(["districts", "onboard", str(drop), "--state", "TX", "--key", "pecan", "--out", str(out), "--json"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    entry = yaml.safe_load(out.read_text())
    assert json.loads(printed.out)["account_info_id"] == entry["account_info_id"] == 666001
    sources = entry["sources"]
    assert list(sources) == list(SCREENERS)  # each recognised by its header, none by its name
    assert {s: sources[s]["link"] for s in SCREENERS} == {s: SCORE[s][0] for s in SCREENERS}
    assert entry["student_link"] == {"classlink": "email", "powerschool": "student_number"}
    assert sources["iready"]["files"] == {k.asset: k.pattern for k in IREADY_FILES}  # the subject by name
    assert IREADY_FILES[0].pattern.startswith("diagnostic_results_ela*.csv|")
    assert sources["iready"].get("bound_by_folder") is True and sources["iready"]["names"] == []
    for name in ("map_growth", "dibels8", "fastbridge"):
        assert sources[name]["names"] == [PECAN.district_name_in_files] and "bound_by_folder" not in sources[name]
    checked = "\n".join(entry["verification"]["checked"])
    assert "i-Ready: its files carry no district name and no state district id" in checked
    assert "510001" not in checked and "@" not in checked  # figures, never a student's value

    # unsigned, it loads nothing; signed off, every vendor's tests of the roster's students load
    assert run_drop(settings, f"pecan/{PECAN.drop_name}").outcome == "failed"
    sign_off(out, "Screeners test")
    report = run_drop(settings, f"pecan/{PECAN.drop_name}")
    assert report.outcome == "loaded", report.render()
    engine = make_engine(settings.warehouse_url)
    try:
        roster = read_table(engine, student_roster)
        results = read_table(engine, assessment_results)
    finally:
        engine.dispose()
    numbers = set(roster["StudentNumber"].to_list())
    assert len(numbers) == PECAN.students and set(results["AccountInfoId"]) == {666001}
    loaded = dict(results.group_by("Assessment").len().iter_rows())
    assert set(loaded) == {"map_growth", "iready_diagnostic", "dibels8", "fastbridge"}  # as the issue names them
    logged = errors(settings)
    for source in SCREENERS:
        events, refused, unknown = expected(drop, source, numbers)
        assert loaded[BY_NAME[source].assessment or source] == events, source
        assert unknown and refused == PECAN.refused_rows * len(FILES[source]), source
        # every refused row counted with its reason, and the unknown students counted, not loaded
        files = logged.filter(pl.col("FileName").is_in(FILES[source]))
        assert files.filter(pl.col("Reason") == "row_rejected")["RowCount"].sum() == refused, source
        assert files.filter(pl.col("Reason") == "unknown_student")["RowCount"].sum() > 0, source
    # the unknown students reach the review queue, the vendor named, each with its true counterpart first
    assert main(["links", "review", "pecan", "--json"]) == 0
    queue = pl.DataFrame(json.loads(capsys.readouterr().out))
    for source in ("iready", "dibels8", "fastbridge"):  # MAP's AssessmentResults names no student: no suggestion
        mine = queue.filter(pl.col("Cause") == f"unknown_{source}_student").sort("Score", descending=True)
        _, _, unknown = expected(drop, source, numbers)
        best = mine.unique("FromId", keep="first")
        assert set(best["FromId"]) == unknown, source
        assert all(to == frm[1:] for frm, to in best.select("FromId", "ToId").rows()), source  # "9" + number
    assert queue.filter(pl.col("Cause") == "unknown_map_growth_student").is_empty()


# ---- over time, for MAP Growth and i-Ready, as for Star (test_truth_over_time.py) ------------------------------

NUMBER = "STUDENTS.STUDENT_NUMBER"
IDS = {"SR.csv": "StudentIdentifier", "SM.csv": "StudentIdentifier", "SEL.csv": "StudentIdentifier",
       "AssessmentResults.csv": "StudentID", "diagnostic_results_ela.csv": "Student ID",
       "diagnostic_results_math.csv": "Student ID"}
OVER_TIME = SampleSpec(students=150, seed=38, drop_name="2026-11-01", without_tests=0, unknown_star_rows=0,
                       excel_mangled_dates=0, missing_from_classlink=0, sources=("star", "map_growth", "iready"))


def later(settings, first: Path, name: str, students: int, cut: dict[str, float] | None = None) -> str:
    """A later snapshot made from `first`: its first `students` students and their tests, each file of `cut` cut
    to that share of its rows (a subject a file no longer holds at all is not replaced, so it is no shrink)."""
    folder = first.parent / name
    shutil.copytree(first, folder)
    (folder / "drop.done").unlink()
    roster = pl.read_csv(folder / "students.csv", infer_schema=False).head(students)
    roster.write_csv(folder / "students.csv")
    for file, column in IDS.items():
        rows = pl.read_csv(folder / file, infer_schema=False, encoding="utf8-lossy")
        rows = rows.filter(pl.col(column).is_in(roster[NUMBER].to_list()))
        share = (cut or {}).get(file, 1.0)  # rows spread through the file: every subject and window loses its share
        rows.filter(pl.int_range(pl.len()) % 10 < round(share * 10)).write_csv(folder / file)
    (folder / "drop.done").write_text("")
    return f"belleville/{name}"


def by_assessment(settings) -> dict[str, pl.DataFrame]:
    engine = make_engine(settings.warehouse_url)
    try:
        results = read_table(engine, assessment_results).drop("LoadedAt").sort("Assessment", "Subject", "TestKey")
        roster = read_table(engine, student_roster).drop("LoadedAt").sort("StudentNumber")
    finally:
        engine.dispose()
    return {"roster": roster, **{a: f for (a,), f in results.partition_by("Assessment", as_dict=True).items()}}


def test_map_growth_and_iready_replay_supersede_keep_history_and_gate_a_shrink_as_star_does(pg_database, tmp_path):
    # On PostgreSQL: the order, history and shrink decisions are the same code on SQLite, where Star's tests run them
    # (test_truth_over_time.py) and these vendors' loads run (the onboarding test above); the suite's time is short
    from .helpers import edited_registry, prepare_drop

    registry = edited_registry(tmp_path, lambda e: e["sources"].update(
        map_growth={"names": ["Belleville Public Schools"]}, iready={"bound_by_folder": True}))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry), MTSS_WAREHOUSE_URL=pg_database,
                             MTSS_PROD_DB_URL=pg_database)
    first = prepare_drop(settings, OVER_TIME)
    old = f"belleville/{OVER_TIME.drop_name}"
    assert run_drop(settings, old).outcome == "loaded"
    loaded = by_assessment(settings)
    assert {"star", "map_growth", "iready_diagnostic"} <= set(loaded)
    assert run_drop(settings, old).outcome == "loaded"  # a replay: the same rows, once each
    assert all(by_assessment(settings)[k].equals(v) for k, v in loaded.items())

    new = later(settings, first, "2026-11-20", students=130)
    assert run_drop(settings, new).outcome == "loaded"
    newest = by_assessment(settings)
    kept = set(newest["roster"].filter(pl.col("IsCurrent"))["StudentNumber"].to_list())
    gone = newest["roster"].filter(~pl.col("IsCurrent"))
    assert len(kept) == 130 and gone.height == 20 and set(gone["DropId"]) == {old}  # the 20 who left, kept
    for assessment, file in (("map_growth", ["AssessmentResults.csv"]),
                             ("iready_diagnostic", ["diagnostic_results_ela.csv", "diagnostic_results_math.csv"])):
        held = newest[assessment]
        assert set(held["DropId"]) == {new} and set(held["StudentNumber"]) <= kept
        sent = sum(pl.read_csv(first.parent / "2026-11-20" / f, infer_schema=False, encoding="utf8-lossy").height
                   for f in file)
        assert held.height == sent and held.height < loaded[assessment].height

    older = run_drop(settings, old)  # the older drop again: superseded, nothing written
    assert older.outcome == "superseded", older.render()
    assert all(by_assessment(settings)[k].equals(v) for k, v in newest.items())

    shrunk = later(settings, first.parent / "2026-11-20", "2026-11-27", students=130,
                   cut={"AssessmentResults.csv": 0.4, "diagnostic_results_ela.csv": 0.4})
    report = run_drop(settings, shrunk)
    assert report.outcome == "blocked" and report.verdict().startswith(f"BLOCKED: {shrunk}: results_shrink"), \
        report.render()
    said = " ".join(errors(settings).filter((pl.col("DropId") == shrunk) & (pl.col("Reason") == "results_shrink"))
                    ["Message"].to_list())
    assert "map_growth Mathematics 2026-2027" in said and "iready_diagnostic ELA 2026-2027" in said, said
    assert all(by_assessment(settings)[k].equals(v) for k, v in newest.items())


_IREADY = "Student ID,Academic Year,Completion Date,Norming Window,Overall Scale Score,Percentile\n"
_MAP = "TermName,StudentID,Subject,TestID,TestStartDate,TestStartTime,TestRITScore,TestPercentile\n"
_DIBELS = ("School Year,District Name,Student Primary ID,Benchmark Period,Client Date,Composite Score,"
           "Composite - National Norm Percentile\n")
_FASTBRIDGE = ("Assessment,District,Local ID,Fall aReading Test Theta,Fall aReading Percentile at Nation,"
               "Fall aReading Risk Level,Fall aReading Final Date\n")
_NOT_WHOLE = {"iready": "Percentile is not a whole number in (1, 99)",
              "map_growth": "TestPercentile is not a whole number in (1, 99)"}
_TWO_DIGITS = "the test's date is outside 1990-2100 (a year of two digits?)"


@pytest.mark.parametrize("asset, source, name, body, refused", [
    ("iready_ela", "iready", "diagnostic_results_ela.csv",
     _IREADY + "1,2025-2026,9/15/2025,Fall,450,40\n2,2025-2026,9/15/2025,Fall,450,4O\n"
               "3,2025-2026,9/15/2025,Fall,450,40.5\n4,2025-2026,5/19/26,Fall,450,40\n",
     {_NOT_WHOLE["iready"]: 2, _TWO_DIGITS: 1}),
    ("map_growth", "map_growth", "AssessmentResults.csv",
     _MAP + "Fall 2025-2026,1,Mathematics,T1,09/10/2025,09:00:00,200,55\n"
            "Fall 2025-2026,2,Mathematics,T2,09/10/2025,09:00:00,200,5x\n"
            "Spring 2025-2026,3,Mathematics,,5/12/26,09:00:00,200,55\n"
            "Term 1 2025-2026,4,Mathematics,T4,09/10/2025,09:00:00,200,55\n",
     {_NOT_WHOLE["map_growth"]: 1, _TWO_DIGITS: 1,
      "TermName without its season (Fall, Winter, Spring or Summer)": 1}),
    ("dibels8", "dibels8", "dibels8_BM.csv",
     _DIBELS + "2025-2026,B,1,MOY,2026-01-20,310,42\n2025-2026,B,2,MOY,2026-01-20,310,Discontinue\n",
     {"Composite - National Norm Percentile is not a whole number in (0, 100)": 1}),
    ("fastbridge_areading", "fastbridge", "FastBridge_aReading.csv",
     _FASTBRIDGE + "aReading,D,1,480.4,40.0,someRisk,9/10/2025\naReading,D,2,480.4,150,someRisk,9/10/2025\n"
                   "aReading,D,3,480.4,40.0,someRisk,9/10/25\n",
     {"Percentile at Nation out of range (0, 100)": 1, _TWO_DIGITS: 1}),
    ("fastbridge_areading", "fastbridge", "FastBridge_aReading.csv",
     "Assessment,District,Local ID,Grade,Fall aReading Test Theta,Fall aReading Risk Level,Fall aReading Final Date\n"
     "aReading,D,1,Kindergarten,480.4,someRisk,9/10/2025\naReading,D,2,Pre-Kindergarten,480.4,someRisk,9/10/2025\n",
     {"value_too_long: grade longer than 12 characters (dm.AssessmentResults.Grade)": 1}),
])
def test_a_screeners_bad_percentile_or_two_digit_year_refuses_its_row_not_the_file(asset, source, name, body, refused):
    """A percentile that is no number ("4O", "Discontinue") loaded as empty, its text lost, though a refusal said
    it would be refused; a date re-saved with a two-digit year ("5/19/26") loaded as the year 26, or halted a
    FastBridge file whole; a FastBridge percentile out of range halted the file; a grade longer than the warehouse
    column failed the load. Each refuses its row now, with its reason; student 1's row loads."""
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import ingest_file, validate_file
    from belleville_mtss.lib.sources import BY_NAME
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    district = entry.model_copy(update={"sources": {**entry.sources, source: BY_NAME[source].section()}})
    validated, _errors = validate_file(ingest_file(asset, Path(name), district, body.encode()), district)
    assert validated.usable and validated.frame["student_link"].to_list() == ["1"]
    assert validated.rejected == refused


def test_a_fastbridge_row_with_a_blank_assessment_cell_loads_and_another_assessment_still_halts_the_file():
    """A blank Assessment cell names no assessment: the file was halted as `wrong_file` for it."""
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import ingest_file, validate_file
    from belleville_mtss.lib.sources import BY_NAME
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    district = entry.model_copy(update={"sources": {**entry.sources, "fastbridge": BY_NAME["fastbridge"].section()}})
    rows = "aReading,D,1,480.4,40.0,someRisk,9/10/2025\n {},D,2,480.4,40.0,someRisk,9/10/2025\n"
    validated, _errors = validate_file(ingest_file("fastbridge_areading", Path("FastBridge_aReading.csv"), district,
                                                   (_FASTBRIDGE + rows.format(" ")).encode()), district)
    assert validated.usable and validated.frame["student_link"].to_list() == ["1", "2"]
    validated, _errors = validate_file(ingest_file("fastbridge_areading", Path("FastBridge_aReading.csv"), district,
                                                   (_FASTBRIDGE + rows.format("aMath")).encode()), district)
    assert not validated.usable and validated.halted.reason == "wrong_file"
