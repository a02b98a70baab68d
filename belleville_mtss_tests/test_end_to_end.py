"""The whole graph on the embedded default (SQLite, local drop folder) and on PostgreSQL."""
import pytest

from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import SMALL, errors, prepare_drop, set_column, warehouse_counts

BELLEVILLE = 107873


def test_drop_lands_in_the_warehouse_and_a_rerun_changes_nothing(settings):
    prepare_drop(settings)
    first = run_drop(settings)
    assert first.success and first.checks_passed, first.render()
    counts = warehouse_counts(settings)
    assert counts["roster"] == SMALL.students
    # every Star row of a rostered student, less the 3 for unknown students
    assert counts["results"] == first.written["dm_assessment_results"] > 0
    assert first.links["assessment_link"]["unknown_student_rows"] == SMALL.unknown_star_rows
    assert first.links["classlink_email"]["not_in_classlink"] == SMALL.missing_from_classlink
    second = run_drop(settings)
    assert second.success and second.checks_passed
    assert warehouse_counts(settings) == counts


def test_star_file_naming_another_district_blocks_the_warehouse(settings):
    drop = prepare_drop(settings)
    set_column(drop / "SR.csv", "DistrictName", "Bloomfield Public Schools")
    report = run_drop(settings)
    assert report.checks["district_names_match_registry"] is False
    assert report.written == {}
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}
    logged = errors(settings).filter(errors(settings)["Stage"] == "district")
    assert logged.height == 1
    row = logged.row(0, named=True)
    assert row["FileName"] == "SR.csv" and row["DistrictId"] == BELLEVILLE
    assert "Bloomfield Public Schools" in row["Message"] and "BLOOMFIELD TOWNSHIP" in row["Message"]
    assert row["OccurredAt"] is not None and row["DropId"] == "belleville/2026-11-01"


def test_star_file_mixing_two_districts_blocks(settings):
    drop = prepare_drop(settings)
    set_column(drop / "SM.csv", "DistrictName", "Belleville School District 118", rows=slice(0, 5))
    report = run_drop(settings)
    assert report.checks["district_names_match_registry"] is False
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}


def test_malformed_file_is_halted_and_the_rest_of_the_drop_lands(settings):
    drop = prepare_drop(settings)
    sm = drop / "SM.csv"
    data = sm.read_bytes()
    sm.write_bytes(data[: len(data) - 300])  # cut short in transfer, mid-record
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    assert "validated_star_math" in report.halted
    logged = errors(settings)
    halted = logged.filter((logged["FileName"] == "SM.csv") & (logged["Stage"] == "ingest"))
    assert halted["Reason"].to_list() == ["truncated"]
    from belleville_mtss.lib.load.warehouse import assessment_results, make_engine, read_table
    engine = make_engine(settings.warehouse_url)
    subjects = set(read_table(engine, assessment_results)["Subject"].to_list())
    engine.dispose()
    assert subjects == {"SR", "SEL"}
    assert warehouse_counts(settings)["roster"] == SMALL.students


def test_unknown_registry_account_info_id_blocks(settings, tmp_path):
    import shutil

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    registry = tmp_path / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    path = registry / "belleville.yaml"
    path.write_text(path.read_text().replace("account_info_id: 107873", "account_info_id: 999999"))
    s = make_settings(settings.home, MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(s)
    report = run_drop(s)
    assert report.checks["account_info_id_exists"] is False
    assert warehouse_counts(s) == {"roster": 0, "results": 0}


def test_whole_graph_on_postgresql(tmp_path, pg_database):
    s = make_settings(tmp_path / "mtss", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    prepare_drop(s)
    first = run_drop(s)
    assert first.success and first.checks_passed, first.render()
    counts = warehouse_counts(s)
    assert counts["roster"] == SMALL.students and counts["results"] > 0
    run_drop(s)
    assert warehouse_counts(s) == counts
    import sqlalchemy as sa
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:  # the tables live in their schemas, as on SQL Server
        tables = set(conn.execute(sa.text(
            "select table_schema || '.' || table_name from information_schema.tables where table_schema in ('dm','dbo')"
        )).scalars())
    engine.dispose()
    assert {"dm.StudentRoster", "dm.AssessmentResults", "dm.AccountInfo", "dm.IngestionErrors",
            "dbo.ClassLinkUsers"} <= tables


@pytest.mark.parametrize("home_env", ["MTSS_HOME"])
def test_demo_command_exits_zero_and_reports(tmp_path, monkeypatch, capsys, home_env):
    from belleville_mtss.cli import main
    from belleville_mtss.lib.district.registry import DEMO_DISTRICTS_DIR
    monkeypatch.setenv(home_env, str(tmp_path / "home"))
    for var in ("MTSS_WAREHOUSE_URL", "MTSS_PROD_DB_URL", "MTSS_DROP_DIR"):
        monkeypatch.delenv(var, raising=False)
    # as the README says to see Pecan Valley in the UI: the demo added its folder again, and its KeyError ended it
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", f"packaged:{DEMO_DISTRICTS_DIR}")
    assert main(["demo", "--students", "400"]) == 0
    out = capsys.readouterr().out
    for expected in ("Rows per source", "Rows rejected", "match rate", "district_names_match_registry    PASSED",
                     "dm.StudentRoster", "400"):
        assert expected in out
    assert (tmp_path / "home" / "warehouse.db").exists()


@pytest.mark.parametrize("command", [["demo"], ["generate", "--out", "sample"]])
def test_a_sample_too_small_to_pass_its_own_gates_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys,
                                                                                      command):
    from belleville_mtss.cli import main
    from belleville_mtss.lib.sample import MIN_STUDENTS
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    for var in ("MTSS_WAREHOUSE_URL", "MTSS_PROD_DB_URL", "MTSS_DROP_DIR", "MTSS_DISTRICTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert main([*command, "--students", str(MIN_STUDENTS - 1)]) == 2
    assert f"at least {MIN_STUDENTS:,} students" in capsys.readouterr().err
    assert not (tmp_path / "home" / "drops").exists() and not (tmp_path / "sample").exists()


def test_a_district_that_sends_two_star_files_loads_them_and_the_third_is_not_expected(tmp_path):
    import sqlite3

    from .helpers import edited_registry

    registry = edited_registry(tmp_path, lambda e: e["sources"]["star"].update(
        files={"star_reading": "SR.csv", "star_math": "SM.csv"}))
    settings = make_settings(tmp_path / "home", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)  # the sample holds SEL.csv too: a file the entry does not list
    report = run_drop(settings)
    assert report.outcome == "loaded" and not report.halted, report.render()
    assert "star_early_literacy" not in report.source_rows
    with sqlite3.connect(settings.home / "warehouse.db") as db:
        subjects = {s for (s,) in db.execute("select distinct Subject from AssessmentResults")}
        audit = dict(db.execute("select FileName, Outcome from IngestionFiles").fetchall())
    assert subjects == {"SR", "SM"}
    assert audit == {"students.csv": "loaded", "SR.csv": "loaded", "SM.csv": "loaded", "SEL.csv": "not_expected"}


def test_a_setting_that_is_wrong_or_a_registry_without_the_sample_districts_is_one_line_and_exit_2(
        tmp_path, monkeypatch, capsys):
    """A mistyped setting gave a traceback from every command; the demo on a registry without its districts, a
    KeyError."""
    from belleville_mtss.cli import main
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_SFTP_PORT", "abc")
    assert main(["status"]) == 2
    assert capsys.readouterr().err.startswith("belleville-mtss: error: MTSS_SFTP_PORT")
    monkeypatch.delenv("MTSS_SFTP_PORT")
    registry = tmp_path / "districts"
    registry.mkdir()
    (registry / "other.yaml").write_text("district: other\n")
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(registry))
    assert main(["demo", "--students", "400"]) == 2
    err = capsys.readouterr().err
    assert err == "belleville-mtss: error: the demo runs the sample districts, and the registry (MTSS_DISTRICTS_DIR) " \
                  "has no usable entry for belleville\n"


def test_a_mistyped_district_is_refused_naming_the_likely_one_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    """`run bellville/2026-11-01` wrote error rows under no district and a Dagster partition no pruning ever took,
    and `status` counted the typo as a district of its own."""
    from belleville_mtss.cli import main
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    for var in ("MTSS_WAREHOUSE_URL", "MTSS_PROD_DB_URL", "MTSS_DROP_DIR", "MTSS_DISTRICTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    for dry in ([], ["--dry-run"]):
        assert main(["run", "bellville/2026-11-01", *dry]) == 2
        assert capsys.readouterr().err == ("belleville-mtss: error: no district 'bellville' in the registry "
                                           "(MTSS_DISTRICTS_DIR): did you mean 'belleville'?\n")
    assert not (tmp_path / "home").exists()
    # an entry that cannot be read may be the district's, under its file's name: named, not a guess
    import shutil

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    shutil.copytree(PACKAGED_DISTRICTS_DIR, tmp_path / "districts")
    (tmp_path / "districts" / "riverton-nj.yaml").write_bytes("district: riverton\nname: Ñ\n".encode("cp1252"))
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(tmp_path / "districts"))
    assert main(["run", "riverton/2026-11-01"]) == 2
    assert capsys.readouterr().err.startswith("belleville-mtss: error: no district 'riverton' in the registry "
                                              "(MTSS_DISTRICTS_DIR); entries that cannot be used: riverton-nj.yaml")
    monkeypatch.delenv("MTSS_DISTRICTS_DIR")
    # and commands that read what runs wrote say so where nothing has run, not "no drop recorded"
    for command in (["status"], ["links", "review", "belleville"]):
        assert main(command) == 2
        assert "no warehouse under MTSS_HOME" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()
