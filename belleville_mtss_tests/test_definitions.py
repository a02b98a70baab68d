import dagster as dg

from belleville_mtss.definitions import build_definitions, defs
from belleville_mtss.lib.config import load_settings

EXPECTED_ASSETS = {
    "powerschool_students", "star_reading", "star_math", "star_early_literacy", "classlink_users", "account_info",
    "validated_powerschool_students", "validated_star_reading", "validated_star_math",
    "validated_star_early_literacy", "validated_classlink_users", "district_crosswalk", "student_identity_map",
    "student_roster", "assessment_results", "dm_student_roster", "dm_assessment_results",
}


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS


def test_district_checks_are_blocking_and_gate_every_downstream_asset(tmp_path):
    d = build_definitions(load_settings({"MTSS_HOME": str(tmp_path)}))
    graph = d.resolve_asset_graph()
    checks = {c.name: c for a in graph.assets_defs for c in a.check_specs}
    assert {"district_names_match_registry", "account_info_id_exists"} <= set(checks)
    assert all(checks[n].blocking for n in ("district_names_match_registry", "account_info_id_exists"))
    crosswalk = dg.AssetKey("district_crosswalk")
    for name in ("student_identity_map", "student_roster", "assessment_results", "dm_student_roster",
                 "dm_assessment_results"):
        node = graph.get(dg.AssetKey(name))
        assert crosswalk in node.parent_keys, name
        assert "all_deps_blocking_checks_passed" in str(node.automation_condition), name
