"""What the Dagster UI shows: groups, kinds, owners and descriptions on every asset and check; row counts,
column schemas and column lineage on table-like assets; figures that plot across materializations."""
from dataclasses import replace

import dagster as dg

from belleville_mtss.definitions import build_definitions
from belleville_mtss.run import run_drop

from .helpers import SMALL, prepare_drop, set_column

GROUPS = {"sources", "validated", "identity", "warehouse", "monitoring"}
TABLE_LIKE = ["validated_star_reading", "validated_powerschool_students", "validated_classlink_users",
              "district_crosswalk", "student_identity_map", "student_roster", "assessment_results",
              "dm_student_roster", "dm_assessment_results"]


def test_every_asset_and_check_is_described(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.group_name in GROUPS, key
        assert spec.kinds, key
        assert spec.owners == ["team:data-integration"], key
        assert spec.description and "\n" not in spec.description.strip(), key
    checks = [c for a in graph.assets_defs for c in a.check_specs]
    # 4 district checks, 4 gates, 3 replace checks, 3 checks on each of the 2 warehouse loads
    assert len(checks) == 19 and all(c.description for c in checks)


def test_materializations_carry_schema_lineage_and_plottable_figures(settings, new_instance):
    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).checks_passed
        meta = {}
        for name in [*TABLE_LIKE, "star_reading", "powerschool_students"]:
            event = instance.get_latest_materialization_event(dg.AssetKey(name))
            meta[name] = event.asset_materialization.metadata
    for name in TABLE_LIKE:
        assert isinstance(meta[name]["dagster/row_count"].value, int), name
        schema = meta[name]["dagster/column_schema"].value
        assert schema.columns and all(c.description for c in schema.columns), name
    def deps(asset: str, column: str) -> set[tuple[str, str]]:  # each asset's lineage names its direct upstream
        lineage = meta[asset]["dagster/column_lineage"].value
        return {(d.asset_key.to_user_string(), d.column_name) for d in lineage.deps_by_column[column]}
    assert deps("dm_student_roster", "StudentNumber") == {("student_roster", "StudentNumber")}
    assert deps("student_roster", "StudentNumber") == {("validated_powerschool_students", "student_number")}
    assert deps("validated_powerschool_students", "student_number") == {
        ("powerschool_students", "STUDENTS.STUDENT_NUMBER")}
    assert deps("assessment_results", "ScaledScore") == {
        (f"validated_{s}", "scaled_score") for s in ("star_reading", "star_math", "star_early_literacy")}
    assert deps("validated_star_reading", "scaled_score") == {("star_reading", "ScaledScore")}
    # each file asset declares the columns it read, as the file names them, and which of ours each feeds
    star = {c.name: c.description for c in meta["star_reading"]["dagster/column_schema"].value.columns}
    assert star["ScaledScore"] == "read into our scaled_score" and star["StudentIdentifier"] == "read into our student_link"
    ps = {c.name: c.description for c in meta["powerschool_students"]["dagster/column_schema"].value.columns}
    assert ps["STUDENTS.STUDENT_NUMBER"] == "read into our student_number"
    # the open-source UI's view of the same chain: a Markdown table on the warehouse asset
    table = meta["dm_assessment_results"]["lineage"].value.splitlines()
    assert ("| dm.AssessmentResults.ScaledScore | assessment_results.ScaledScore <- validated_star_reading.scaled_score"
            ' | SR.csv, column "ScaledScore" |') in table
    assert not any("LoadedAt" in row or "DropId" in row for row in table)  # ours, no source
    identity = meta["student_identity_map"]
    assert isinstance(identity["classlink_email/match_rate"].value, float)  # plotted across materializations
    assert "| classlink_email |" in identity["match_rates"].value
    assert isinstance(meta["validated_star_reading"]["rows_rejected"].value, int)
    assert "district_names_match_registry" not in meta["district_crosswalk"]  # checks carry their own metadata
    # files, not rows: the crosswalk's row of the ClassLink table made it 5 for the drop's 4 files
    assert (meta["district_crosswalk"]["files_verified"].value, meta["district_crosswalk"]["files_halted"].value) \
        == (4, 0)


def test_a_refused_drop_ends_with_a_plain_summary_and_its_crosswalk_is_not_materialized(settings, new_instance):
    drop = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(drop / "SM.csv", "DistrictName", "Nutley Public Schools")
    with new_instance() as instance:
        report = run_drop(settings, "belleville/foreign", instance=instance)
        (run,) = instance.get_runs()
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
        crosswalk = instance.get_latest_materialization_event(dg.AssetKey("district_crosswalk"))
    assert report.outcome == "blocked" and run.status == dg.DagsterRunStatus.FAILURE
    assert crosswalk is None  # a refused drop's crosswalk is no good materialization
    (failure,) = [e.step_failure_data for e in events if e.is_step_failure]
    assert failure.error.cls_name == "Failure"  # ours, not DagsterAssetCheckFailedError
    summary = failure.user_failure_data.description.splitlines()
    assert summary[0] == ("Blocked: drop belleville/foreign is registered to Belleville Public Schools (NJ, "
                          "AccountInfoId 107873); nothing was written to the warehouse.")
    assert summary[1] == "- SM.csv: names 'Nutley Public Schools', resolved; best candidate 'NUTLEY' " \
                         "(AccountInfoId 200015, score 100.0)"
    assert summary[2].startswith("Remedy (district_names_match_registry): if these files are Belleville")
    assert len(summary) == 3
    (names,) = [e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                and e.event_specific_data.check_name == "district_names_match_registry"]
    table = names.metadata["files"].value.splitlines()
    files = [line.split(" | ")[0].strip("| ") for line in table[2:]]
    assert sorted(files) == sorted(["students.csv", "SR.csv", "SM.csv", "SEL.csv", "dbo.ClassLinkUsers"])
    assert not names.passed and names.metadata["failing"].value == 1
