"""A district that screens with MAP Growth, i-Ready, DIBELS 8 and FastBridge (no Star), as a person brings it in:
`districts onboard` on its sample drop, sign-off, then runs; and the same guarantees over time that Star has
(a replay, an older drop, a student who left, results that shrink), for MAP Growth and i-Ready. Real SQLite and
PostgreSQL; every file generated in its vendor's real layout (lib/sources/<vendor>/sample.py)."""
import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from belleville_mtss.cli import main
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.load.warehouse import account_info, assessment_results, make_engine, read_table, student_roster
from belleville_mtss.lib.sample import REFUSED_SCORE, SampleSpec, generate_drop, load_databases
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import errors

SCREENERS = ("map_growth", "iready", "dibels8", "fastbridge")
PECAN = SampleSpec(
    students=300, seed=36, drop_name="2026-11-20", star_district_name="Pecan Valley Independent School District",
    classlink_tenant="Pecan Valley ISD", classlink_tenant_id=4836, missing_from_classlink=5, without_tests=6,
    unknown_star_rows=3, refused_rows=2, first_student_number=510001, email_domain="pecanvalley.example.org",
    sources=SCREENERS)
PECAN_ACCOUNT = {"AccountInfoId": 666001, "NcesId": "4899901", "DistrictName": "PECAN VALLEY ISD", "State": "TX",
                 "County": None}
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


def sign_off(path: Path) -> None:
    entry = yaml.safe_load(path.read_text())
    entry["verification"] |= {"verified_by": "Screeners test", "verified_on": dt.date(2026, 12, 4),
                              "ferpa_review_on": dt.date.today()}
    path.write_text(yaml.safe_dump(entry, sort_keys=False))


@pytest.fixture
def pecan(backend, tmp_path, monkeypatch):
    """Pecan Valley's sample drop in its folder, its ClassLink users and dm.AccountInfo row; no registry entry."""
    registry = tmp_path / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    settings = make_settings(backend.home, MTSS_DISTRICTS_DIR=str(registry), MTSS_WAREHOUSE_URL=backend.warehouse_url,
                             MTSS_PROD_DB_URL=backend.prod_db_url)
    for name, value in (("MTSS_HOME", backend.home), ("MTSS_DISTRICTS_DIR", registry),
                        ("MTSS_WAREHOUSE_URL", backend.warehouse_url), ("MTSS_PROD_DB_URL", backend.prod_db_url)):
        monkeypatch.setenv(name, str(value))
    drop = settings.drop_dir / "pecan" / PECAN.drop_name
    tables = generate_drop(drop, PECAN)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"].filter(
        pl.col("TenantName") == PECAN.classlink_tenant))
    engine = make_engine(settings.warehouse_url)
    with engine.begin() as conn:
        conn.execute(account_info.insert(), [PECAN_ACCOUNT])
    engine.dispose()
    return settings, registry, drop


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
    assert sources["iready"]["files"] == {"iready_ela": "diagnostic_results_ela*.csv",
                                          "iready_math": "diagnostic_results_math*.csv"}  # the subject by name
    assert sources["iready"].get("bound_by_folder") is True and sources["iready"]["names"] == []
    for name in ("map_growth", "dibels8", "fastbridge"):
        assert sources[name]["names"] == [PECAN.star_district_name] and "bound_by_folder" not in sources[name]
    checked = "\n".join(entry["verification"]["checked"])
    assert "i-Ready: its files carry no district name and no state district id" in checked
    assert "510001" not in checked and "@" not in checked  # figures, never a student's value

    # unsigned, it loads nothing; signed off, every vendor's tests of the roster's students load
    assert run_drop(settings, f"pecan/{PECAN.drop_name}").outcome == "failed"
    sign_off(out)
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
    logged = errors(settings)
    for source in SCREENERS:
        events, refused, unknown = expected(drop, source, numbers)
        assert loaded[source] == events, source
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
