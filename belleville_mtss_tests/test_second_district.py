"""A second, made-up district onboarded the way docs/onboarding-a-district.md says: its own PowerSchool header
style and delimiter, its own names per source, its own drops; two districts in one instance."""
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


def test_both_districts_land_each_stamped_with_its_own_account(tmp_path, new_instance):
    settings, _ = _setup(tmp_path)
    with new_instance() as instance:
        for key in ("belleville/2026-11-01", "riverton/2026-11-15"):
            report = run_drop(settings, key, instance=instance)
            assert report.success and report.checks_passed, (key, report.render())
    assert _rows_by_district(settings) == {"roster": {107873: SMALL.students, 555001: RIVERTON.students},
                                           "results": [107873, 555001]}


def test_a_foreign_file_in_one_district_blocks_only_that_drop(tmp_path, new_instance):
    settings, riverton = _setup(tmp_path)
    set_column(riverton / "SR.csv", "DistrictName", "Belleville Public Schools")  # Belleville's file, wrong folder
    with new_instance() as instance:
        bad = run_drop(settings, "riverton/2026-11-15", instance=instance)
        good = run_drop(settings, "belleville/2026-11-01", instance=instance)
    assert bad.checks["district_names_match_registry"] is False
    assert good.checks_passed
    assert _rows_by_district(settings)["roster"] == {107873: SMALL.students}
    logged = errors(settings).filter(pl.col("Stage") == "district")
    assert logged["DistrictId"].to_list() == [555001] and logged["DropId"].to_list() == ["riverton/2026-11-15"]


def _shared_tenant_name(tmp_path, riverton_ids: list[int]):
    """Riverton's ClassLink tenant is also called "Belleville PD" (as Belleville WI's would be)."""
    import yaml
    from dataclasses import replace
    registry = two_district_registry(tmp_path)
    for name, ids, tenant in (("belleville.yaml", [SMALL.classlink_tenant_id], None),
                              ("riverton.yaml", riverton_ids, "Belleville PD")):
        entry = yaml.safe_load((registry / name).read_text())
        entry["classlink_tenant_ids"] = ids
        if tenant:
            entry["source_names"]["classlink"] = [tenant]
        (registry / name).write_text(yaml.safe_dump(entry, sort_keys=False))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    add_riverton(settings, replace(RIVERTON, classlink_tenant="Belleville PD"))
    return settings


def test_two_districts_sharing_a_classlink_tenant_name_each_link_only_their_own_users(tmp_path, new_instance):
    settings = _shared_tenant_name(tmp_path, [RIVERTON.classlink_tenant_id])
    with new_instance() as instance:
        reports = {key: run_drop(settings, key, instance=instance)
                   for key in ("belleville/2026-11-01", "riverton/2026-11-15")}
    for key, report in reports.items():
        assert report.success and report.checks_passed, (key, report.render())
    # each read its own tenant's student users only (the sample's users: students kept in ClassLink)
    assert reports["belleville/2026-11-01"].source_rows["classlink_users"] == \
        SMALL.students - SMALL.missing_from_classlink
    assert reports["riverton/2026-11-15"].source_rows["classlink_users"] == \
        RIVERTON.students - RIVERTON.missing_from_classlink
    roster = read_table(make_engine(settings.warehouse_url), student_roster)
    for account, tenant in ((107873, SMALL.classlink_tenant_id), (555001, RIVERTON.classlink_tenant_id)):
        linked = roster.filter((pl.col("AccountInfoId") == account) & pl.col("ClassLinkUserId").is_not_null())
        assert linked.height > 0 and linked["ClassLinkUserId"].str.starts_with(f"CL{tenant}-").all(), account


def test_a_tenant_name_shared_by_two_tenants_is_refused_until_the_registry_lists_the_districts_own(tmp_path):
    settings = _shared_tenant_name(tmp_path, [])
    report = run_drop(settings, "riverton/2026-11-15")
    assert not report.success
    assert (f"shared by tenants {SMALL.classlink_tenant_id}, {RIVERTON.classlink_tenant_id}" in report.verdict()
            and "classlink_tenant_ids" in report.verdict()), report.verdict()
    assert _rows_by_district(settings)["roster"] == {}
