"""Across runs: the automation conditions hold identity and warehouse assets until the district checks pass."""
import dagster as dg

from belleville_mtss.definitions import build_definitions

from .helpers import prepare_drop, set_column

DOWNSTREAM = ["student_identity_map", "student_roster", "assessment_results", "dm_student_roster",
              "dm_assessment_results"]
UPSTREAM = dg.AssetSelection.groups("sources", "validated") | dg.AssetSelection.assets("district_crosswalk")


def _run_upstream_then_evaluate(settings) -> dict[str, int]:
    defs = build_definitions(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        job = dg.define_asset_job("upstream", selection=UPSTREAM)
        defs_with_job = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        # a first tick before the drop arrives, as the automation sensor would have made
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        defs_with_job.resolve_job_def("upstream").execute_in_process(instance=instance, raise_on_error=False)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
        return {name: result.get_num_requested(dg.AssetKey(name)) for name in DOWNSTREAM[:1]}


def test_failed_district_check_holds_automated_runs(settings):
    drop = prepare_drop(settings)
    set_column(drop / "SEL.csv", "DistrictName", "Bellevue Public Schools")
    assert _run_upstream_then_evaluate(settings) == {"student_identity_map": 0}


def test_passed_district_check_lets_automated_runs_go(settings):
    prepare_drop(settings)
    assert _run_upstream_then_evaluate(settings) == {"student_identity_map": 1}
