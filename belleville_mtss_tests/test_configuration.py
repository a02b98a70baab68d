"""Configuration that means what it says, and gates that stop a wrong drop: header alternatives, required and
optional fields, links as configured, the registry as the authority on names, entries that stand alone, the gates
with their acceptance, and exit codes and words that tell the truth."""
from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
import yaml

from belleville_mtss.cli import main
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.district.registry import load_registry
from belleville_mtss.lib.load.warehouse import (
    account_info, assessment_results, class_link_users, gate_acceptances, make_engine, read_table, student_roster,
)
from belleville_mtss.run import OUTCOME_TAG, run_drop
from .conftest import make_settings
from .helpers import (
    SMALL, add_riverton, edited_registry, errors, prepare_drop, set_column, tick, two_district_registry,
    warehouse_counts,
)

PS_NUMBER, PS_CUSTOM_EMAIL = "STUDENTS.STUDENT_NUMBER", "U_STUDENTSUSERFIELDS.custom_student_email"
STAR = ("SR.csv", "SM.csv", "SEL.csv")


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _table(settings, table) -> pl.DataFrame:
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, table)
    finally:
        engine.dispose()


def _cli(capsys, monkeypatch, settings, *argv) -> tuple[int, str]:
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    for var in ("MTSS_WAREHOUSE_URL", "MTSS_PROD_DB_URL", "MTSS_DISTRICTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    if settings.districts_dirs != (PACKAGED_DISTRICTS_DIR,):
        monkeypatch.setenv("MTSS_DISTRICTS_DIR", os.pathsep.join(map(str, settings.districts_dirs)))
    code = main(list(argv))
    return code, capsys.readouterr().out


# ---- 1. header alternatives: the packaged entry follows the mapping spec ---------------------------------------

def test_a_data_export_manager_export_with_students_email_and_no_dob_loads_with_the_packaged_entry(settings,
                                                                                                   new_instance):
    drop = prepare_drop(settings)
    ps = _read(drop / "students.csv").rename({PS_CUSTOM_EMAIL: "STUDENTS.EMAIL"}).drop("STUDENTS.DOB")
    ps.write_csv(drop / "students.csv")
    report = run_drop(settings)
    assert report.outcome == "loaded", report.verdict()
    assert warehouse_counts(settings)["roster"] == SMALL.students
    assert report.links["classlink_email"]["linked"] == SMALL.students - SMALL.missing_from_classlink
    meta = _materialization(settings, "validated_powerschool_students", new_instance())
    assert "| email | STUDENTS.EMAIL |" in meta["headers_matched"]  # the run says which header matched
    assert "| dob | (absent: optional, read as empty) |" in meta["headers_matched"]
    assert "optional field dob" in meta["warnings"]


def test_the_alternative_header_is_read_when_the_first_is_absent(settings, new_instance):
    prepare_drop(settings)  # the sample keeps the address in the custom field
    report = run_drop(settings)
    assert report.outcome == "loaded"
    meta = _materialization(settings, "validated_powerschool_students", new_instance())
    assert f"| email | {PS_CUSTOM_EMAIL} |" in meta["headers_matched"]


def _materialization(settings, asset: str, instance: dg.DagsterInstance) -> dict:
    """The metadata of the asset's latest materialization in a run of the drop on a new instance."""
    with instance:
        run_drop(settings, instance=instance)
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


# ---- 2. a missing optional column is a warning; a missing required one halts the file --------------------------

def test_missing_optional_columns_are_warnings_and_the_file_goes_on(settings, new_instance):
    drop = prepare_drop(settings)
    _read(drop / "students.csv").drop("STUDENTS.FIRST_NAME", "STUDENTS.LAST_NAME", "STUDENTS.GRADE_LEVEL").write_csv(
        drop / "students.csv")
    report = run_drop(settings)
    assert report.outcome == "loaded", report.verdict()
    roster = _table(settings, student_roster)
    assert roster.height == SMALL.students and roster["FirstName"].null_count() == SMALL.students
    meta = _materialization(settings, "validated_powerschool_students", new_instance())
    assert all(f"optional field {f}" in meta["warnings"] for f in ("first_name", "last_name", "grade_level"))


def test_a_missing_required_column_halts_the_file_naming_every_accepted_header(settings):
    drop = prepare_drop(settings)
    _read(drop / "students.csv").drop(PS_CUSTOM_EMAIL).write_csv(drop / "students.csv")
    report = run_drop(settings)
    assert report.outcome == "failed" and report.exit_code == 1
    row = errors(settings).filter(pl.col("Reason") == "missing_columns").row(0, named=True)
    assert row["FileName"] == "students.csv"
    assert f"email (STUDENTS.EMAIL or {PS_CUSTOM_EMAIL})" in row["Message"]
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}


# ---- 3. links as configured ---------------------------------------------------------------------------------

LINKS = [  # (Renaissance column, PowerSchool field, its header, how the district's values look)
    ("StudentIdentifier", "student_number", None, None),
    ("StudentStateID", "state_studentnumber", "STUDENTS.STATE_STUDENTNUMBER", "98{}"),
    ("StudentSourcedID", "dcid", "STUDENTS.DCID", "S{}"),
    ("StudentUserID", "id", "STUDENTS.ID", "u-{}"),
]


@pytest.mark.parametrize(("renaissance", "field", "header", "shape"), LINKS, ids=[r for r, *_ in LINKS])
def test_each_configured_link_joins_star_rows_to_students(tmp_path, renaissance, field, header, shape):
    def edit(entry):
        entry["student_link"] = {"classlink": "email", "powerschool": field}
        entry["sources"]["star"]["link"] = renaissance
        if header:
            entry["powerschool"]["columns"][field] = header

    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(edited_registry(tmp_path, edit)))
    drop = prepare_drop(settings)
    if header:  # the district's other identifier, in both exports; StudentIdentifier itself is left as it is
        ps = _read(drop / "students.csv")
        ps.with_columns(pl.format(shape, pl.col(PS_NUMBER)).alias(header)).write_csv(drop / "students.csv")
        for name in STAR:
            star = _read(drop / name)
            star.with_columns(pl.format(shape, pl.col("StudentIdentifier")).alias(renaissance)).write_csv(drop / name)
    report = run_drop(settings)
    assert report.outcome == "loaded", report.verdict()
    linked = report.links["assessment_link"]
    assert linked["unknown_student_rows"] == SMALL.unknown_star_rows and linked["linked_rows"] > 700
    results = _table(settings, assessment_results)
    numbers = set(_read(drop / "students.csv")[PS_NUMBER])
    assert results.height == linked["linked_rows"] and set(results["StudentNumber"]) <= numbers  # stamped with
    # the PowerSchool student number, whatever the link


def test_a_link_the_files_do_not_carry_blocks_instead_of_emptying_the_warehouse(tmp_path):
    """Finding 3: with renaissance StudentStateID (empty in these exports) nothing links; the gates block."""
    registry = edited_registry(tmp_path, lambda e: e["sources"]["star"].update(link="StudentStateID"))
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    first = run_drop(make_settings(tmp_path / "home"))  # loaded once with the right link
    assert first.outcome == "loaded"
    before = warehouse_counts(settings)
    report = run_drop(settings)
    assert report.outcome == "blocked" and report.exit_code == 1
    assert report.checks["assessment_files_linked"] is False  # every row rejected ("missing StudentStateID"): none linked
    assert all(r.startswith("missing StudentStateID") or r.startswith("unreadable")
               for r in _rejections(settings, "SR.csv"))
    assert warehouse_counts(settings) == before  # the earlier load stands, untouched
    assert "BLOCKED" in report.verdict() and "OK" not in report.verdict()


# ---- 4. the registry is the authority on names --------------------------------------------------------------

def _rejections(settings, file_name: str) -> list[str]:
    logged = errors(settings).filter((pl.col("FileName") == file_name) & (pl.col("Stage") == "validation"))
    return [m.split("rejected: ", 1)[1] for m in logged["Message"]]


def _rename_tenant(settings, name: str) -> None:
    engine = make_engine(settings.prod_db_url)
    with engine.begin() as conn:
        conn.execute(class_link_users.update().where(class_link_users.c.TenantName == "Belleville PD")
                     .values(TenantName=name))
    engine.dispose()


def test_a_listed_name_verifies_whatever_its_score(tmp_path):
    # "Springfield Mass" would never pass by score; listed for ClassLink, it verifies
    registry = edited_registry(tmp_path, lambda e: e["source_names"].update(classlink=["Belleville  P.D. (NJ)"]))
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    _rename_tenant(settings, "belleville p.d. (nj)")  # case, spacing and punctuation aside
    report = run_drop(settings)
    assert report.outcome == "loaded", report.verdict()


@pytest.mark.parametrize("renamed", ["Nutley PD", "Belleville Schools"])
def test_a_tenant_id_narrows_the_name_match_and_a_renamed_tenant_is_named_in_the_refusal(tmp_path, renamed):
    registry = edited_registry(tmp_path, lambda e: e.update(classlink_tenant_ids=[SMALL.classlink_tenant_id]))
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    _rename_tenant(settings, renamed)  # the listed id, under a name the registry does not list: never read
    report = run_drop(settings)
    assert report.outcome == "failed" and warehouse_counts(settings) == {"roster": 0, "results": 0}
    assert f"tenant id(s) {SMALL.classlink_tenant_id} are named '{renamed}'" in report.verdict(), report.verdict()
    assert "add the name to source_names.classlink" in report.verdict()
    # the person checks the name is the district's and lists it: the drop loads
    registry = edited_registry(tmp_path, lambda e: e.update(classlink_tenant_ids=[SMALL.classlink_tenant_id],
                                                            source_names={**e["source_names"], "classlink": [renamed]}),
                               name="corrected")
    assert run_drop(make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))).outcome == "loaded"


def test_an_unlisted_name_that_resolves_by_score_passes_and_is_suggested(tmp_path, new_instance):
    settings = make_settings(tmp_path / "home")
    drop = prepare_drop(settings)
    set_column(drop / "SR.csv", "DistrictName", "Belleville Public School District")
    with new_instance() as instance:
        report = run_drop(settings, instance=instance)
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("district_crosswalk"), "district_names_match_registry")])
    assert report.outcome == "loaded", report.verdict()
    check = next(iter(evaluation.values())).event.dagster_event.event_specific_data
    assert "add 'Belleville Public School District' to sources.star.names" in \
        check.metadata["suggested_registry_names"].value


@pytest.mark.parametrize("name", ["DEFAULT DISTRICT", "Default District", "default-district"])
def test_a_placeholder_name_never_verifies_by_score(tmp_path, name):
    settings = make_settings(tmp_path / "home")
    drop = prepare_drop(settings)
    engine = make_engine(settings.warehouse_url)
    with engine.begin() as conn:  # a placeholder row in the district's state that would resolve by score
        conn.execute(account_info.update().where(account_info.c.AccountInfoId == 107873)
                     .values(DistrictName="DEFAULT DISTRICT"))
    engine.dispose()
    set_column(drop / "SR.csv", "DistrictName", name)
    report = run_drop(settings)
    assert report.outcome == "blocked" and report.checks["district_names_match_registry"] is False


def test_the_remedy_docs_operations_names_for_an_unmatched_name_works(tmp_path, capsys, monkeypatch):
    """docs/operations.md, district_unmatched: "verify and add the new name to source_names, then replay"."""
    registry = edited_registry(tmp_path, lambda e: None)
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    drop = prepare_drop(settings)
    set_column(drop / "SR.csv", "DistrictName", "Township of Belleville Board of Ed")  # renamed by the vendor
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    assert code == 1 and out.strip().splitlines()[-1].startswith("BLOCKED: belleville/2026-11-01: "
                                                                  "district_names_match_registry")
    assert errors(settings).filter(pl.col("Stage") == "district")["Reason"].to_list()[0] in (
        "district_unmatched", "district_ambiguous")
    path = registry / "belleville.yaml"  # the person verifies it, and lists it
    entry = yaml.safe_load(path.read_text())
    entry["sources"]["star"]["names"].append("Township of Belleville Board of Ed")
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")  # the replay
    assert code == 0 and out.strip().splitlines()[-1].startswith("OK: belleville/2026-11-01")


# ---- 5. each registry entry stands alone ---------------------------------------------------------------------

def test_a_malformed_entry_blocks_only_its_own_district(tmp_path, capsys, monkeypatch, new_instance):
    registry = two_district_registry(tmp_path)
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    add_riverton(settings)
    riverton = registry / "riverton.yaml"
    riverton.write_text(riverton.read_text().replace("state: OR", "state: Oregon").replace(
        'nces_id: "4199999"', 'nces_id: "41999"'))
    with new_instance() as instance:
        assert run_drop(settings, "belleville/2026-11-01", instance=instance).outcome == "loaded"
        bad = run_drop(settings, "riverton/2026-11-15", instance=instance)
        result = tick(settings, instance)
        again = tick(settings, instance, result.cursor)
    assert bad.outcome == "failed" and "riverton.yaml" in bad.verdict() and "state" in bad.verdict()
    logged = errors(settings).filter(pl.col("Stage") == "registry")
    # once from the run, once from the first sensor tick (not again at the next one)
    assert logged.height == 2 and set(logged["FileName"]) == {"riverton.yaml"}
    assert set(logged["DistrictId"]) == {555001} and again is not None
    # belleville's drop was received by the run above (not run again); riverton's never was: its run stopped first
    assert [r.partition_key for r in result.run_requests] == ["riverton/2026-11-15"]
    code, out = _cli(capsys, monkeypatch, settings, "districts", "check")
    assert code == 1
    problems = out[out.index("riverton"):]
    assert "nces_id" in problems and "state" in problems  # every problem of the file at once
    assert "belleville: OK" in out


def test_a_district_defined_twice_is_refused_naming_both_files(tmp_path):
    registry = two_district_registry(tmp_path)
    (registry / "belleville-copy.yaml").write_text((registry / "belleville.yaml").read_text())
    loaded = load_registry(registry)
    assert "belleville" not in loaded and "riverton" in loaded
    assert loaded.problems["belleville"].message == ("belleville-copy.yaml, belleville.yaml: district 'belleville' "
                                                     "is defined twice")


def test_several_registry_folders_and_the_packaged_one(tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "riverton.yaml").write_text((Path(__file__).parent / "fixtures" / "districts" / "riverton.yaml")
                                       .read_text())
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=f"{own}{os.pathsep}packaged")
    assert set(load_registry(settings.districts_dirs)) == {"belleville", "riverton"}
    alone = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(own))
    assert set(load_registry(alone.districts_dirs)) == {"riverton"}


def test_optional_registry_keys_are_optional(tmp_path):
    registry = edited_registry(tmp_path, lambda e: (e["verification"].pop("ferpa_review_on"), e.pop("gates"),
                                                    e.pop("files"), e.pop("student_link")))
    entry = load_registry(registry)["belleville"]
    assert entry.verification.ferpa_review_on is None and entry.sources["star"].min_link_rate == 0.90
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    report = run_drop(settings)  # loads, until the FERPA check says why it may not
    assert report.outcome == "blocked" and report.checks["ferpa_review_current"] is False
    assert not report.failures.get("received_drop")


# ---- 6. gates -------------------------------------------------------------------------------------------------

def _grow_roster(settings, drop: Path, extra: int) -> None:
    """`extra` more students (new numbers and addresses), in PowerSchool and in ClassLink: a larger district."""
    ps = _read(drop / "students.csv")
    start = int(ps[PS_NUMBER].cast(pl.Int64).max()) + 1
    more = ps.head(extra).with_columns(
        pl.Series(PS_NUMBER, [str(start + i) for i in range(extra)]),
        pl.Series(PS_CUSTOM_EMAIL, [f"new{start + i}@bellevilleschools.org" for i in range(extra)]))
    pl.concat([ps, more]).write_csv(drop / "students.csv")
    os.utime(drop / "students.csv", (time.time() + 5, time.time() + 5))  # a new version of the drop
    engine = make_engine(settings.prod_db_url)
    with engine.begin() as conn:
        conn.execute(class_link_users.insert(), [
            {"UserId": f"NEW-{start + i}", "TenantId": SMALL.classlink_tenant_id, "TenantName": "Belleville PD",
             "Role": "student", "Email": f"new{start + i}@bellevilleschools.org"} for i in range(extra)])
    engine.dispose()


def test_a_roster_far_larger_than_the_districts_is_blocked_and_can_be_accepted_once(settings, capsys, monkeypatch):
    drop = prepare_drop(settings)
    assert run_drop(settings).outcome == "loaded"
    _grow_roster(settings, drop, 120)  # 300 -> 420 students: +40 %
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    verdict = out.strip().splitlines()[-1]
    assert code == 1 and verdict.startswith("BLOCKED: belleville/2026-11-01: roster_size: gate roster_size: "
                                            "420 students against 300 now in dm.StudentRoster (+40.0%)")
    assert "within 25.00% required" in verdict and "--accept roster_size" in verdict
    assert warehouse_counts(settings)["roster"] == SMALL.students
    row = errors(settings).filter(pl.col("Stage") == "gate").row(0, named=True)
    assert row["Reason"] == "roster_size" and row["DistrictId"] == 107873
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01", "--accept", "roster_size")
    assert code == 2  # an acceptance needs a reason
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01", "--accept", "roster_size",
                     "--reason", "two schools merged into the district this term")
    assert code == 0, out
    assert warehouse_counts(settings)["roster"] == 420
    accepted = _table(settings, gate_acceptances)
    assert accepted.select("DropId", "Gate", "Reason").rows() == [
        ("belleville/2026-11-01", "roster_size", "two schools merged into the district this term")]
    assert "420 students against 300" in accepted["Figure"][0] and accepted["AcceptedBy"][0]
    code, _out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")  # the same version: accepted
    assert code == 0
    _grow_roster(settings, drop, 200)  # a new version: 620 against 420, +48 %: the acceptance does not carry over
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    assert code == 1 and "roster_size" in out.strip().splitlines()[-1]


def test_a_first_roster_is_exempt_from_the_roster_gate(settings):
    drop = prepare_drop(settings)
    _grow_roster(settings, drop, 250)
    assert run_drop(settings).outcome == "loaded"


def test_a_star_file_whose_district_name_is_blank_on_every_row_blocks(settings):
    drop = prepare_drop(settings)
    assert run_drop(settings).outcome == "loaded"
    before = warehouse_counts(settings)
    set_column(drop / "SEL.csv", "DistrictName", "")
    report = run_drop(settings)
    assert report.outcome == "blocked" and report.checks["assessment_files_linked"] is False
    assert "SEL.csv" in report.why["assessment_files_linked"] and "none linked" in report.why["assessment_files_linked"]
    assert warehouse_counts(settings) == before


def test_too_few_classlink_links_block_with_the_figure_and_the_threshold(settings):
    prepare_drop(settings)
    engine = make_engine(settings.prod_db_url)
    with engine.begin() as conn:  # half of the tenant's addresses changed: a wrong field mapped, say
        ids = [r[0] for r in conn.execute(sa.select(class_link_users.c.UserId).where(
            class_link_users.c.TenantName == "Belleville PD").order_by(class_link_users.c.UserId))][::2]
        conn.execute(class_link_users.update().where(class_link_users.c.UserId.in_(ids)).values(Email="x"))
    engine.dispose()
    report = run_drop(settings)
    assert report.outcome == "blocked" and report.checks["classlink_link_rate"] is False
    assert "students linked to ClassLink; at least 80.00% required" in report.why["classlink_link_rate"]


def test_gate_thresholds_are_the_registrys(tmp_path):
    registry = edited_registry(tmp_path, lambda e: e["sources"]["star"].update(min_link_rate=0.999))
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)  # 3 of about 800 Star rows are for unknown students: 99.6 % linked
    report = run_drop(settings)
    assert report.checks["assessment_link_rate"] is False
    assert "at least 99.90% for Star (sources.star.min_link_rate)" in report.why["assessment_link_rate"]


# ---- 7. exit codes and words; error rows per file -------------------------------------------------------------

def test_exit_codes_and_verdicts_say_loaded_partial_blocked_and_failed(settings, capsys, monkeypatch):
    drop = prepare_drop(settings)
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    assert code == 0 and out.strip().splitlines()[-1] == (
        f"OK: belleville/2026-11-01: {SMALL.students} roster rows and "
        f"{warehouse_counts(settings)['results']} results loaded, every file")
    data = (drop / "SM.csv").read_bytes()
    (drop / "SM.csv").write_bytes(data[:-300])
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    verdict = out.strip().splitlines()[-1]
    assert code == 3 and verdict.startswith("PARTIAL: belleville/2026-11-01:") and "SM.csv" in verdict
    assert "OK" not in verdict and "every blocking check passed" not in out
    set_column(drop / "SR.csv", "DistrictName", "Nutley Public Schools")
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    assert code == 1 and out.strip().splitlines()[-1].startswith("BLOCKED:")
    set_column(drop / "SR.csv", "DistrictName", "Belleville Public Schools")
    (drop / "students.csv").write_text("")
    code, out = _cli(capsys, monkeypatch, settings, "run", "belleville/2026-11-01")
    assert code == 1 and out.strip().splitlines()[-1].startswith("FAILED:")


def test_the_run_is_tagged_with_its_outcome(settings, new_instance):
    drop = prepare_drop(settings)
    (drop / "SEL.csv").unlink()
    with new_instance() as instance:
        report = run_drop(settings, instance=instance)
        (run,) = instance.get_runs()
    assert report.outcome == "partial" and run.tags[OUTCOME_TAG] == "partial"


def test_identity_error_rows_carry_their_file_one_row_per_file_and_reason(settings):
    prepare_drop(settings)
    run_drop(settings)
    logged = errors(settings).filter(pl.col("Reason") == "unknown_student")
    assert sorted(logged["FileName"]) == sorted(STAR)
    assert logged["RowCount"].sum() == SMALL.unknown_star_rows
    assert all(m.startswith(f) for f, m in zip(logged["FileName"], logged["Message"]))


def test_runs_launched_from_the_ui_or_the_drop_sensor_are_tagged_by_the_outcome_sensor(settings, new_instance):
    from belleville_mtss.definitions import build_definitions
    from belleville_mtss.defs.outcomes import drop_outcome_sensor
    drop = prepare_drop(settings)
    (drop / "SEL.csv").unlink()
    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", ["belleville/2026-11-01"])
        job = build_definitions(settings).resolve_job_def("drop_job")
        run = job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01", raise_on_error=False)
        assert OUTCOME_TAG not in instance.get_run_by_id(run.run_id).tags
        from belleville_mtss.defs.resources import resources
        with dg.build_sensor_context(instance=instance, resources=resources(settings)) as context:
            first = drop_outcome_sensor(context)
        assert instance.get_run_by_id(run.run_id).tags[OUTCOME_TAG] == "partial"
        assert "tagged 1" in first.skip_message


def test_a_run_of_the_results_load_alone_that_loads_is_tagged_loaded_and_logs_no_failure(settings, new_instance):
    """A load of dm_assessment_results alone (selected in the UI) was judged against both warehouse tables: tagged
    failed, with a run/failed error row, though it loaded every result."""
    from belleville_mtss.definitions import build_definitions
    from belleville_mtss.defs.outcomes import drop_outcome_sensor
    from belleville_mtss.defs.resources import resources
    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        job = build_definitions(settings).resolve_job_def("drop_job")
        run = job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01", raise_on_error=False,
                                     asset_selection=[dg.AssetKey("dm_assessment_results")])
        assert run.success
        with dg.build_sensor_context(instance=instance, resources=resources(settings)) as context:
            drop_outcome_sensor(context)
        assert instance.get_run_by_id(run.run_id).tags[OUTCOME_TAG] == "loaded"
    assert errors(settings).filter((pl.col("RunId") == run.run_id) & (pl.col("Stage") == "run")).is_empty()


def test_a_run_of_the_results_load_alone_of_an_older_drop_is_tagged_superseded_with_no_failure_or_alert(
        settings, new_instance):
    """The replace checks are the roster's: a load of the results alone shows none, and its refusal reached the
    report as a failed step: a harmless backfill from the UI was tagged failed, logged a run/failed row and alerted."""
    import shutil
    from belleville_mtss.definitions import build_definitions
    from belleville_mtss.defs.outcomes import drop_outcome_sensor
    from belleville_mtss.defs.resources import resources
    from belleville_mtss.report import DropReport, drop_alerts
    drop = prepare_drop(settings)
    shutil.copytree(drop, drop.parent / "2026-11-20")
    with new_instance() as instance:
        for key in ("belleville/2026-11-01", "belleville/2026-11-20"):  # the older drop's frames kept, as a run keeps
            assert run_drop(settings, key, instance=instance).outcome == "loaded"
        job = build_definitions(settings).resolve_job_def("drop_job")
        run = job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01", raise_on_error=False,
                                     asset_selection=[dg.AssetKey("dm_assessment_results")])
        report = DropReport.from_events("belleville/2026-11-01", run.all_events)
        assert (report.outcome, report.exit_code, drop_alerts(report, run.run_id, "drop_job", True)) == (
            "superseded", 4, [])
        assert report.verdict().startswith("SUPERSEDED: belleville/2026-11-01: drop_is_newest: superseded: ")
        with dg.build_sensor_context(instance=instance, resources=resources(settings)) as context:
            drop_outcome_sensor(context)
        assert instance.get_run_by_id(run.run_id).tags[OUTCOME_TAG] == "superseded"
    assert errors(settings).filter((pl.col("RunId") == run.run_id) & (pl.col("Stage") == "run")).is_empty()
