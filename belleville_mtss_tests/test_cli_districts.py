"""`belleville-mtss districts suggest | match | check` against a real (SQLite) warehouse."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from belleville_mtss.cli import main
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.sample import load_databases

from .conftest import make_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def warehouse_env(tmp_path, monkeypatch):
    import polars as pl

    settings = make_settings(tmp_path / "home")
    load_databases(settings.prod_db_url, settings.warehouse_url, pl.DataFrame(schema={
        "UserId": pl.Utf8, "TenantId": pl.Int64, "TenantName": pl.Utf8, "Role": pl.Utf8, "Email": pl.Utf8,
        "GivenName": pl.Utf8, "FamilyName": pl.Utf8}))
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    for var in ("MTSS_WAREHOUSE_URL", "MTSS_DISTRICTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return settings


def test_suggest_ranks_belleville_first_in_nj(warehouse_env, capsys):
    assert main(["districts", "suggest", "Belleville Public Schools", "--state", "NJ", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "resolved"
    best = out["candidates"][0]
    assert (best["account_info_id"], best["nces_id"], best["state"]) == (107873, "3401350", "NJ")


def test_suggest_without_state_lists_the_same_name_districts(warehouse_env, capsys):
    assert main(["districts", "suggest", "BELLEVILLE SCHOOL DISTRICT"]) == 0
    out = capsys.readouterr().out
    assert "ambiguous" in out and "(WI)" in out and "(NJ)" in out


def test_suggest_unknown_state_is_a_clear_error(warehouse_env, capsys):
    assert main(["districts", "suggest", "Belleville", "--state", "ZZ"]) == 2
    assert "unknown state 'ZZ'" in capsys.readouterr().err


def test_match_with_a_reference_file(tmp_path, capsys):
    ref = tmp_path / "ref.csv"
    ref.write_text("nces_id,name,state,county\n3401350,BELLEVILLE,NJ,ESSEX\n5500990,BELLEVILLE SCHOOL DISTRICT,WI,DANE\n"
                   "3401950,BOONTON TOWN,NJ,MORRIS\n3401980,BOONTON TOWNSHIP,NJ,MORRIS\n")
    inp = tmp_path / "in.csv"
    inp.write_text("name,state,note\nBelleville Public Schools,NJ,a\nBELLEVILLE SCHOOL DISTRICT,,b\n"
                   "Boonton Twp School District,NJ,c\nNowhere Regional,NJ,d\n")
    out = tmp_path / "out.csv"
    assert main(["districts", "match", str(inp), "--reference", str(ref), "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["name", "state", "note", "decision", "nces_id", "matched_name", "score", "margin"]
    assert [(r["decision"], r["nces_id"], r["note"]) for r in rows] == [
        ("resolved", "3401350", "a"), ("ambiguous", "", "b"), ("resolved", "3401980", "c"), ("unmatched", "", "d")]
    assert "4 names: 2 resolved, 1 ambiguous, 1 unmatched" in capsys.readouterr().err


def test_match_against_the_warehouse(warehouse_env, tmp_path, capsys):
    inp = tmp_path / "in.csv"
    inp.write_text("name,state\nBelleville PD,NJ\n")
    assert main(["districts", "match", str(inp)]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert rows[0]["decision"] == "resolved" and rows[0]["account_info_id"] == "107873"


@pytest.mark.parametrize(("content", "message"), [
    (None, "input file not found"),
    ("district,state\nBelleville,NJ\n", "lacks column(s) name"),
    ("name,state\nBelleville,XX\n", "line 2: unknown state 'XX'"),
])
def test_match_errors_are_clear(tmp_path, capsys, content, message):
    ref = tmp_path / "ref.csv"
    ref.write_text("nces_id,name,state\n3401350,BELLEVILLE,NJ\n")
    inp = tmp_path / "in.csv"
    if content is not None:
        inp.write_text(content)
    assert main(["districts", "match", str(inp), "--reference", str(ref)]) == 2
    assert message in capsys.readouterr().err


def test_match_reference_missing_columns(tmp_path, capsys):
    (tmp_path / "ref.csv").write_text("leaid,name\n1,X\n")
    (tmp_path / "in.csv").write_text("name\nX\n")
    assert main(["districts", "match", str(tmp_path / "in.csv"), "--reference", str(tmp_path / "ref.csv")]) == 2
    assert "lacks column(s) nces_id, state" in capsys.readouterr().err


def test_check_passes_for_belleville_and_reports_a_wrong_name(warehouse_env, tmp_path, monkeypatch, capsys):
    assert main(["districts", "check", "belleville"]) == 0
    assert "belleville: OK" in capsys.readouterr().out
    registry = tmp_path / "districts"
    registry.mkdir()
    text = (PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text()
    (registry / "belleville.yaml").write_text(text.replace('["Belleville PD"]', '["Bloomfield PD"]'))
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(registry))
    assert main(["districts", "check"]) == 1
    out = capsys.readouterr().out
    assert "belleville: PROBLEMS" in out and "classlink name 'Bloomfield PD'" in out and "BLOOMFIELD TOWNSHIP" in out


def test_check_unknown_district(warehouse_env, capsys):
    assert main(["districts", "check", "atlantis"]) == 2
    assert "district 'atlantis' is not in the registry" in capsys.readouterr().err


def test_resolution_benchmark_runs_on_a_small_sample(reference_dir):
    script = REPO / "benchmarks" / "district_resolution.py"
    done = subprocess.run([sys.executable, str(script), "--reference", str(reference_dir / "districts"),
                           "--limit", "400"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "variants, with state" in done.stdout and "time:" in done.stdout
    variants = next(l for l in done.stdout.splitlines() if l.startswith("variants, with state"))
    assert variants.split()[-1] == "0"  # never another state
    assert float(variants.split()[4]) >= 0.99  # precision of resolved decisions


def test_migrate_rewrites_an_entry_of_the_earlier_shape_into_one_that_means_the_same(tmp_path, capsys):
    import shutil

    from belleville_mtss.lib.district.registry import load_district

    old = Path(__file__).parent / "fixtures" / "districts" / "riverton.yaml"  # written before `sources:`
    path = tmp_path / "riverton.yaml"
    shutil.copy(old, path)
    before = load_district(path)  # the earlier shape loads as it is
    path.chmod(0o640)
    if os.geteuid() == 0:  # the daemon's group may be what reads it: kept too
        os.chown(path, -1, 65534)
    assert main(["districts", "migrate", str(tmp_path), "--dry-run"]) == 0
    assert path.read_bytes() == old.read_bytes()  # a dry run writes nothing
    assert main(["districts", "migrate", str(tmp_path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o640  # as before: the rewrite was the writer's alone (0600)
    assert path.stat().st_gid == (65534 if os.geteuid() == 0 else os.getegid())
    out = capsys.readouterr().out
    assert "source_names.renaissance -> sources.star.names" in out
    assert "student_link.renaissance -> sources.star.link" in out
    after = load_district(path)
    assert after == before and "sources:" in path.read_text() and "renaissance" not in path.read_text()
    assert after.sources["star"].files == {"star_reading": "SR.csv", "star_math": "SM.csv",
                                           "star_early_literacy": "SEL.csv"}  # every Star file, as it meant
    assert main(["districts", "migrate", str(tmp_path)]) == 0
    assert "riverton.yaml: already in today's shape" in capsys.readouterr().out


def test_migrate_refuses_what_is_no_entry_or_does_not_load_and_writes_nothing(tmp_path, capsys):
    old = (Path(__file__).parent / "fixtures" / "districts" / "riverton.yaml").read_text()
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "bad.yaml").write_text(old.replace("  renaissance: StudentIdentifier", "  renaissance: StudentName"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["districts", "migrate", str(tmp_path / "list.yaml")]) == 2
    assert "list.yaml: not migrated, not a registry entry" in capsys.readouterr().err
    assert main(["districts", "migrate", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: not migrated, the entry does not load: student_link.renaissance: Input should be" in err
    assert "input_value" not in err  # the field and what is wrong, never the entry's values
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_commands_against_a_warehouse_of_no_schema_or_with_a_bad_argument_end_in_one_line(tmp_path, monkeypatch,
                                                                                          capsys):
    """An operator's commands against a warehouse our migrations never ran on (or `stamp` of no such revision, a
    log level misspelled) ended in a traceback."""
    import sqlalchemy as sa
    from belleville_mtss.cli import main
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE AccountInfo (AccountInfoId INTEGER, DistrictName TEXT, State TEXT, "
                             "County TEXT, NcesId TEXT)")
    engine.dispose()
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", url)
    for argv in (["links", "review", "belleville"], ["links", "accept", "1", "--reason", "r"], ["run", "belleville"],
                 ["warehouse", "stamp", "9999"], ["status", "belleville"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("belleville-mtss: error: ") and err.count("\n") == 1, (argv, err)
    with pytest.raises(SystemExit):
        main(["run", "belleville/2026-11-01", "--log-level", "LOUD"])
    assert "invalid choice: 'LOUD'" in capsys.readouterr().err
    assert main(["run", "belleville/2026-11-01", "--reason", "why"]) == 2  # a reason for no acceptance: said, not run
    assert "--reason goes with --accept" in capsys.readouterr().err


def test_an_entry_that_cannot_be_read_stops_its_own_district_only(tmp_path):
    """An entry the loader could not read (here a folder named as one; an entry another account owns, 0600, is the
    same OSError) raised out of the whole registry's load: every district's runs and ticks failed with it."""
    import shutil

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    shutil.copytree(PACKAGED_DISTRICTS_DIR, tmp_path / "districts")
    (tmp_path / "districts" / "other.yaml").mkdir()
    (tmp_path / "districts" / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")  # a link to nowhere: the same
    registry = load_registry(tmp_path / "districts")
    assert "belleville" in registry
    assert registry.problems["other"].message.startswith("other.yaml: cannot be read (IsADirectoryError")
    assert registry.problems["gone"].message == "gone.yaml: cannot be read (FileNotFoundError: No such file or " \
                                                "directory)"


def test_a_stamp_below_the_recorded_revision_is_refused_and_the_warehouse_stays_usable(tmp_path, monkeypatch, capsys):
    """`warehouse stamp 0003` on a warehouse at head was accepted: status then failed, and every upgrade after it
    (a column added twice)."""
    import sqlalchemy as sa
    from belleville_mtss.cli import main
    from belleville_mtss.lib.load.migrations import HEAD, current, upgrade
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    upgrade(engine)
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", url)
    for lower in ("0003", "base"):  # base (no revision at all) too: it deleted the record
        assert main(["warehouse", "stamp", lower]) == 2
        assert "never takes the record back" in capsys.readouterr().err
    assert main(["warehouse", "stamp", "head"]) == 0  # the record as it is: no harm
    assert current(engine) == HEAD
    engine.dispose()


def test_a_stamp_of_an_empty_warehouse_and_a_warehouse_a_newer_release_upgraded_say_what_to_do(tmp_path, monkeypatch,
                                                                                                 capsys):
    """`stamp head` on an empty database said recorded, then every command failed on a missing table; a warehouse
    a newer release had upgraded was called behind, and the upgrade it advised failed ("can't locate revision")."""
    import sqlalchemy as sa
    from belleville_mtss.cli import main
    from belleville_mtss.lib.load.migrations import HEAD, VERSION_TABLE, current, upgrade
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", url)
    assert main(["warehouse", "stamp", "head"]) == 2
    assert "holds no StudentRoster, AssessmentResults, IngestionFiles" in capsys.readouterr().err
    assert current(engine) is None
    upgrade(engine)
    newer = f"{int(HEAD) + 1:04d}"
    with engine.begin() as conn:  # as a newer release leaves it
        conn.execute(sa.text(f'UPDATE "{VERSION_TABLE}" SET version_num = :v'), {"v": newer})
    assert main(["warehouse", "current"]) == 1
    assert f"schema revision {newer} is past this release's {HEAD}" in capsys.readouterr().out
    assert main(["warehouse", "upgrade"]) == 2
    assert "install that release" in capsys.readouterr().err
    from belleville_mtss.lib.load.migrations import WarehouseNotReady, open_warehouse
    with pytest.raises(WarehouseNotReady, match="install that release"):  # the embedded default, which upgrades
        open_warehouse(url, embedded=True)  # itself: Alembic's "can't locate revision" before
    assert current(engine) == newer
    engine.dispose()


def test_a_names_file_not_in_utf8_or_an_output_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    """`districts match` on a Windows-1252 names file, or with --output in a folder that does not exist, ended in
    a traceback."""
    from belleville_mtss.cli import main
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    names = tmp_path / "names.csv"
    names.write_bytes("name,state\nPeñuelas,PR\n".encode("cp1252"))
    assert main(["districts", "match", str(names)]) == 2
    assert capsys.readouterr().err.startswith("belleville-mtss: error: a file given is not UTF-8 text")
    names.write_text("name,state\nBelleville,NJ\n")
    reference = tmp_path / "reference.csv"
    reference.write_text("nces_id,name,state\n3401350,BELLEVILLE TOWNSHIP SCHOOL DISTRICT,NJ\n")
    assert main(["districts", "match", str(names), "--reference", str(reference), "--output",
                 str(tmp_path / "nowhere" / "out.csv")]) == 2
    assert capsys.readouterr().err == f"belleville-mtss: error: {tmp_path / 'nowhere' / 'out.csv'}: No such file or " \
                                      "directory\n"
