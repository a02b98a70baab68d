"""Lineage a data-team member can read: each warehouse column traced through the intermediate assets to the source
file's column, with the header the district's registry entry maps (the CLI, and the table the UI shows)."""
import pytest

from belleville_mtss.cli import main
from belleville_mtss.lib.sources import FILES
from belleville_mtss.lib.columns import (
    CROSSWALK_FRAME, FRAMES, IDENTITY_FRAME, RESULTS_TABLE, ROSTER_TABLE, WAREHOUSE_TABLES, lineage,
    lineage_paths, lineage_text,
)
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.district.registry import load_registry
from .helpers import edited_registry

SOURCES = {f.asset for f in FILES} | {"classlink_users", "account_info"}
COLUMNS = {  # the columns each intermediate asset really has
    **{f.validated: {c for c, _t, _d in FRAMES[f.asset]} for f in FILES},
    "validated_classlink_users": {c for c, _t, _d in FRAMES["classlink_users"]},
    "district_crosswalk": {c for c, _t, _d in CROSSWALK_FRAME},
    "student_identity_map": {c for c, _t, _d in IDENTITY_FRAME},
    "student_roster": {c for c, _t, _d in ROSTER_TABLE}, "assessment_results": {c for c, _t, _d in RESULTS_TABLE},
    "dm_student_roster": {c for c, _t, _d in ROSTER_TABLE},
    "dm_assessment_results": {c for c, _t, _d in RESULTS_TABLE},
}


def _belleville(registry_dir=PACKAGED_DISTRICTS_DIR):
    return load_registry([registry_dir])["belleville"]


def _cli(capsys, monkeypatch, *argv, registry=None) -> tuple[int, str, str]:
    monkeypatch.delenv("MTSS_DISTRICTS_DIR", raising=False)
    if registry:
        monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(registry))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_path_runs_through_real_columns_to_a_source():
    district = _belleville()
    graph = lineage(district)
    for asset, columns in graph.items():
        assert set(columns) <= COLUMNS[asset], asset  # a typo in the declaration would name a column that is not
        for column in columns:
            for path in lineage_paths(district, asset, column):
                *inner, (source, _header) = path
                assert source in SOURCES, path
                assert all(c in COLUMNS[a] for a, c in inner), path
    traced = {c for asset in WAREHOUSE_TABLES for c in graph[asset] if lineage_paths(district, asset, c)}
    # ours, no source column: the drop, the time of loading, the subject (which Star file, lib/sources/star/),
    # the assessment (which source), and whether the newest drop lists the student (roster history)
    assert {c for c, _t, _d in ROSTER_TABLE + RESULTS_TABLE} - traced == {"DropId", "LoadedAt", "Subject",
                                                                          "Assessment", "IsCurrent"}


def test_the_cli_traces_a_score_to_each_star_file(capsys, monkeypatch):
    code, out, _ = _cli(capsys, monkeypatch, "lineage", "dm.AssessmentResults.ScaledScore")
    assert code == 0
    blocks = out.split("\n\n")[1:]
    assert [b.splitlines() for b in blocks] == [[
        "dm.AssessmentResults.ScaledScore",
        "  <- assessment_results.ScaledScore",
        f"  <- validated_{asset}.scaled_score",
        f'  <- {asset}: {file}, column "ScaledScore"',
    ] for asset, file in (("star_reading", "SR.csv"), ("star_math", "SM.csv"), ("star_early_literacy", "SEL.csv"))]


def test_the_chain_shows_the_headers_the_districts_registry_maps(tmp_path, capsys, monkeypatch):
    def edit(entry):
        entry["student_link"] = {"classlink": "email", "powerschool": "state_studentnumber"}
        entry["sources"]["star"]["link"] = "StudentStateID"
        entry["powerschool"]["columns"]["state_studentnumber"] = "STUDENTS.STATE_STUDENTNUMBER"
        entry["powerschool"]["columns"]["student_number"] = "Student_Number"
        entry.setdefault("files", {})["powerschool_students"] = "ps_export*.csv"

    registry = edited_registry(tmp_path, edit)
    code, out, _ = _cli(capsys, monkeypatch, "lineage", "dm.AssessmentResults.StudentNumber", registry=registry)
    assert code == 0
    assert '  <- powerschool_students: ps_export*.csv, column "Student_Number"' in out
    assert '  <- star_reading: SR.csv, column "StudentStateID"' in out
    assert "StudentIdentifier" not in out and "STUDENTS.STUDENT_NUMBER" not in out
    roster = lineage_text(_belleville(registry), "dm.StudentRoster.StarTestCount")
    assert 'ps_export*.csv, column "STUDENTS.STATE_STUDENTNUMBER"' in roster


@pytest.mark.parametrize(("target", "message"), [
    ("dm.Students.ScaledScore", "dm.Students: not one of our tables"),
    ("dm.AssessmentResults.Lexile", "dm.AssessmentResults.Lexile: no such column"),
    ("ScaledScore", "ScaledScore: not one of our tables"),
])
def test_an_unknown_table_or_column_is_refused_plainly(capsys, monkeypatch, target, message):
    code, out, err = _cli(capsys, monkeypatch, "lineage", target)
    assert code == 2 and out == "" and message in err


def test_a_column_we_make_says_so_and_case_does_not_matter(capsys, monkeypatch):
    code, out, _ = _cli(capsys, monkeypatch, "lineage", "dm.studentroster.loadedat")
    assert code == 0 and "dm.StudentRoster.LoadedAt: made by the pipeline itself (no source column)" in out


def test_several_districts_need_district(tmp_path, capsys, monkeypatch):
    from .helpers import two_district_registry
    registry = two_district_registry(tmp_path)
    code, _out, err = _cli(capsys, monkeypatch, "lineage", "dm.StudentRoster.Email", registry=registry)
    assert code == 2 and "--district is needed" in err
    code, out, _ = _cli(capsys, monkeypatch, "lineage", "dm.StudentRoster.Email", "--district", "belleville",
                        registry=registry)
    assert code == 0 and "registry entry belleville" in out


def test_each_screeners_scores_are_traced_to_their_vendors_headers(capsys, monkeypatch):
    from belleville_mtss.lib.district.registry import DEMO_DISTRICTS_DIR

    monkeypatch.setenv("MTSS_DISTRICTS_DIR", f"packaged:{DEMO_DISTRICTS_DIR}")
    assert main(["lineage", "dm.AssessmentResults.ScaledScore", "--district", "pecan-valley"]) == 0
    out = capsys.readouterr().out
    for traced in ('map_growth: AssessmentResults*.csv, column "TestRITScore"',
                   'iready_ela: diagnostic_results_ela*.csv, column "Overall Scale Score"',
                   'iready_math: diagnostic_results_math*.csv, column "Overall Scale Score"',
                   'dibels8: dibels8*.csv, column "Composite Score"'):
        assert traced in out
    assert "SR.csv" not in out  # Pecan Valley sends no Star
