import dagster as dg

from belleville_mtss.definitions import build_definitions, defs
from belleville_mtss.lib.config import load_settings

EXPECTED_ASSETS = {
    "received_drop", "powerschool_students", "star_reading", "star_math", "star_early_literacy", "classlink_users", "account_info",
    "validated_powerschool_students", "validated_star_reading", "validated_star_math",
    "validated_star_early_literacy", "validated_classlink_users", "district_crosswalk", "student_identity_map",
    "student_roster", "assessment_results", "dm_student_roster", "dm_assessment_results", "drop_freshness",
    "link_review",
    # the screeners beside Star (lib/sources/map_growth, iready, dibels8, fastbridge): a file asset and a validated one each
    "map_growth", "validated_map_growth", "iready_ela", "validated_iready_ela", "iready_math", "validated_iready_math",
    "dibels8", "validated_dibels8", "fastbridge_areading", "validated_fastbridge_areading", "fastbridge_amath",
    "validated_fastbridge_amath", "oneroster_export", "validated_oneroster_export",
}


def test_definitions_load_and_validate():
    loaded = defs()  # built when loaded, not at import
    dg.Definitions.validate_loadable(loaded)
    keys = {k.to_user_string() for k in loaded.resolve_asset_graph().get_all_asset_keys()}
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


def test_dagster_cli_loads_the_code_location_from_workspace_and_pyproject(tmp_path):
    """What `dagster dev` does at the repository root: workspace.yaml and [tool.dagster] name one location."""
    import os
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parent.parent
    workspace = yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    tool = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["dagster"]
    assert workspace["module_name"] == tool["module_name"]
    assert workspace["location_name"] == tool["code_location_name"]
    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "MTSS_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    for extra in (["-w", "workspace.yaml"], []):
        done = subprocess.run([str(dagster), "definitions", "validate", *extra], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Validation successful for code location belleville_mtss" in done.stderr + done.stdout
