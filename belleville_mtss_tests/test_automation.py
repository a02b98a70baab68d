"""Across runs: the automation conditions hold identity and warehouse assets until the district checks pass."""
import dagster as dg

from belleville_mtss.definitions import build_definitions
from belleville_mtss.defs.assets import drop_assets
from belleville_mtss.lib.district.registry import load_registry

from dataclasses import replace

from belleville_mtss.defs.partitions import drops

from .helpers import SMALL, prepare_drop, set_column

DOWNSTREAM = ["student_identity_map", "student_roster", "assessment_results", "dm_student_roster",
              "dm_assessment_results"]
UPSTREAM = dg.AssetSelection.groups("sources", "validated") | dg.AssetSelection.assets("district_crosswalk")


def _run_upstream_then_evaluate(settings, keys: list[str], instance: dg.DagsterInstance) -> set[str]:
    """Run sources, validation and the crosswalk (with its checks) for each drop on a new instance, then ask
    automation which drops' identity maps it would materialize."""
    defs = build_definitions(settings)
    # what a run of the district's drop makes of them: the kinds of file it does not send are left out
    made = UPSTREAM & dg.AssetSelection.assets(*drop_assets(load_registry(settings.districts_dirs)["belleville"]))
    with instance:
        job = dg.define_asset_job("upstream", selection=made, partitions_def=drops)
        defs_with_job = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        instance.add_dynamic_partitions("drops", keys)
        # a first tick before the drops arrive, as the automation sensor would have made
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        for key in keys:
            defs_with_job.resolve_job_def("upstream").execute_in_process(
                instance=instance, raise_on_error=False, partition_key=key)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
        return set(result.get_requested_partitions(dg.AssetKey(DOWNSTREAM[0])))


def test_a_failed_district_check_holds_only_that_drop(settings, new_instance):
    prepare_drop(settings, replace(SMALL, drop_name="good"))
    bad = prepare_drop(settings, replace(SMALL, drop_name="bad"))
    set_column(bad / "SEL.csv", "DistrictName", "Bellevue Public Schools")
    requested = _run_upstream_then_evaluate(settings, ["belleville/bad", "belleville/good"], new_instance())
    assert requested == {"belleville/good"}  # the bad drop is held


def test_passed_district_checks_let_automated_runs_go(settings, new_instance):
    prepare_drop(settings)
    requested = _run_upstream_then_evaluate(settings, ["belleville/2026-11-01"], new_instance())
    assert requested == {"belleville/2026-11-01"}
