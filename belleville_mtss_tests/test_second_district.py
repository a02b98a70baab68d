"""A second, made-up district onboarded the way docs/onboarding-a-district.md says: its own PowerSchool header
style and delimiter, its own names per source, its own drops; two districts in one instance."""
import dagster as dg
import polars as pl

from belleville_mtss.cli import main
from belleville_mtss.lib.load.warehouse import assessment_results, make_engine, read_table, student_roster
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import SMALL, RIVERTON, add_riverton, errors, prepare_drop, set_column, two_district_registry


def _setup(tmp_path):
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(two_district_registry(tmp_path)))
    prepare_drop(settings)
    riverton = add_riverton(settings)
    return settings, riverton


def _rows_by_district(settings) -> dict:
    engine = make_engine(settings.warehouse_url)
    roster = read_table(engine, student_roster)["AccountInfoId"].value_counts().sort("AccountInfoId").rows()
    results = read_table(engine, assessment_results)["AccountInfoId"].unique().sort().to_list()
    engine.dispose()
    return {"roster": dict(roster), "results": results}


def test_onboarding_steps_resolve_and_check_the_new_entry(tmp_path, monkeypatch, capsys):
    settings, _ = _setup(tmp_path)
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(settings.districts_dirs[0]))
    for name in ("Riverton Unified Schools", "Riverton USD", "RIVERTON UNIFIED SCHOOL DISTRICT"):
        assert main(["districts", "suggest", name, "--state", "OR"]) == 0
        assert "AccountInfoId 555001" in capsys.readouterr().out.splitlines()[1]
    assert main(["districts", "check", "riverton"]) == 0
    assert "riverton: OK" in capsys.readouterr().out


def test_both_districts_land_each_stamped_with_its_own_account(tmp_path):
    settings, _ = _setup(tmp_path)
    with dg.DagsterInstance.ephemeral() as instance:
        for key in ("belleville/2026-11-01", "riverton/2026-11-15"):
            report = run_drop(settings, key, instance=instance)
            assert report.success and report.checks_passed, (key, report.render())
    assert _rows_by_district(settings) == {"roster": {107873: SMALL.students, 555001: RIVERTON.students},
                                           "results": [107873, 555001]}


def test_a_foreign_file_in_one_district_blocks_only_that_drop(tmp_path):
    settings, riverton = _setup(tmp_path)
    set_column(riverton / "SR.csv", "DistrictName", "Belleville Public Schools")  # Belleville's file, wrong folder
    with dg.DagsterInstance.ephemeral() as instance:
        bad = run_drop(settings, "riverton/2026-11-15", instance=instance)
        good = run_drop(settings, "belleville/2026-11-01", instance=instance)
    assert bad.checks["district_names_match_registry"] is False
    assert good.checks_passed
    assert _rows_by_district(settings)["roster"] == {107873: SMALL.students}
    logged = errors(settings).filter(pl.col("Stage") == "district")
    assert logged["DistrictId"].to_list() == [555001] and logged["DropId"].to_list() == ["riverton/2026-11-15"]
