"""One district, one load at a time, on every path (issue 23): the warehouse holds the lock (a PostgreSQL advisory
lock, a file lock beside the SQLite file), so a CLI run and an in-process run of one district never interleave."""
import os
import shutil
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

from belleville_mtss.lib.load.lock import DistrictBusy, district_lock
from belleville_mtss.lib.load.warehouse import (
    assessment_results, ingestion_files, make_engine, read_table, student_roster,
)
from belleville_mtss.run import instance_for, run_drop
from .conftest import make_settings
from .helpers import SMALL, errors, prepare_drop


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path}/w.db" if request.param == "sqlite" else request.getfixturevalue("pg_database")


def test_a_second_load_of_a_district_waits_then_stops_and_another_district_never_waits(url):
    engine = make_engine(url)
    outcome = {}

    def second(district: int, wait: float):
        started = time.monotonic()
        try:
            with district_lock(engine, district, wait):
                outcome[district] = ("held", time.monotonic() - started)
        except DistrictBusy as exc:
            outcome[district] = (str(exc), time.monotonic() - started)

    with district_lock(engine, 107873, 1) as waited:
        assert waited < 1
        for district in (107873, 555001):
            t = threading.Thread(target=second, args=(district, 0.6))
            t.start()
            t.join()
    said, seconds = outcome[107873]
    assert "another load of the district (AccountInfoId 107873)" in said and 0.6 <= seconds < 3
    assert outcome[555001][0] == "held" and outcome[555001][1] < 0.5
    second(107873, 0.6)  # released: the next load takes it at once
    assert outcome[107873][0] == "held"
    engine.dispose()


def _runs_in_warehouse_load(settings) -> int:
    started = 0
    with instance_for(settings) as instance:  # a new one each time: what the other process wrote since
        for run in instance.get_runs():
            started += any(e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
                           and e.dagster_event.step_key == "warehouse_load" for e in instance.all_logs(run.run_id))
    return started


@pytest.mark.persistent_instance  # both runs on the instance under MTSS_HOME, as the CLI's and the UI's are
def test_a_cli_run_and_an_in_process_run_of_one_district_load_one_after_the_other(tmp_path, url):
    env = {"MTSS_WAREHOUSE_URL": url, "MTSS_PROD_DB_URL": url} if url.startswith("postgresql") else {}
    settings = make_settings(tmp_path / "home", **env)
    first = prepare_drop(settings)
    shutil.copytree(first, first.parent / "2026-11-02")  # the district's next snapshot, sent the day after
    with instance_for(settings):
        pass  # Dagster's instance storage made once, before two processes use it
    engine = make_engine(settings.warehouse_url)
    cli_env = {**os.environ, "MTSS_HOME": str(settings.home), **env}
    with district_lock(engine, 107873, 5):  # both runs reach their load while another holds the district
        cli = subprocess.Popen([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-02"],
                               env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reports = {}
        inner = threading.Thread(target=lambda: reports.setdefault("in-process", run_drop(settings)))
        inner.start()
        deadline = time.monotonic() + 180
        while _runs_in_warehouse_load(settings) < 2 and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(1)
        if _runs_in_warehouse_load(settings) != 2:
            cli.kill()
            pytest.fail(f"both runs did not reach their load: {cli.communicate()}")
    inner.join(timeout=180)
    out, err = cli.communicate(timeout=180)
    in_process = reports["in-process"]
    # whichever took the lock second waited for the first, and the report says so; the older drop, if second,
    # was superseded by the newer one already loaded
    assert "Waited" in out or "Waited" in in_process.render(), (out, in_process.render())
    assert cli.returncode == 0, out + err
    assert in_process.outcome in ("loaded", "superseded"), in_process.verdict()
    roster = read_table(engine, student_roster)
    assert roster.height == SMALL.students and set(roster["DropId"]) == {"belleville/2026-11-02"}
    results = read_table(engine, assessment_results)
    assert set(results["DropId"]) == {"belleville/2026-11-02"} and results["TestKey"].n_unique() == results.height
    audit = read_table(engine, ingestion_files)
    assert "received" not in set(audit["Outcome"]), audit.select("DropId", "FileName", "Outcome")
    engine.dispose()


def test_a_load_that_waits_too_long_stops_with_a_plain_message_and_decides_its_files(tmp_path, new_instance):
    settings = make_settings(tmp_path / "home", MTSS_LOAD_LOCK_WAIT_SECONDS="1")
    prepare_drop(settings)
    engine = make_engine(settings.warehouse_url)
    with district_lock(engine, 107873, 1), new_instance() as instance:
        report = run_drop(settings, instance=instance)
    assert report.outcome == "failed"
    assert "held the warehouse's district lock for more than 1 s" in report.verdict(), report.verdict()
    assert read_table(engine, student_roster).height == 0
    assert set(read_table(engine, ingestion_files)["Outcome"]) == {"failed"}
    assert "district_busy" in set(errors(settings)["Reason"])
    engine.dispose()


@pytest.mark.persistent_instance
def test_six_first_runs_at_once_on_a_new_home_all_end_with_a_verdict(tmp_path):
    settings = make_settings(tmp_path / "home")
    prepare_drop(settings)
    assert not (settings.home / "dagster").exists()  # Dagster's storage is made by the runs themselves
    env = {**os.environ, "MTSS_HOME": str(settings.home)}
    env.pop("DAGSTER_HOME", None)
    runs = [subprocess.Popen([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-01"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    ended = [(run.communicate(timeout=400), run.returncode) for run in runs]
    for (out, err), code in ended:
        last = out.strip().splitlines()[-1] if out.strip() else ""
        assert code == 0 and last.startswith("OK: belleville/2026-11-01: "), (code, last, err[-2000:])
    with instance_for(settings) as instance:
        assert len(instance.get_runs()) == 6
    engine = make_engine(settings.warehouse_url)
    assert read_table(engine, student_roster).height == SMALL.students
    assert "received" not in set(read_table(engine, ingestion_files)["Outcome"])
    engine.dispose()


@pytest.mark.persistent_instance
def test_a_run_of_a_drops_bytes_before_a_correction_writes_nothing_over_the_correction(tmp_path):
    """The CLI's run of a drop has its frames in hand; SR.csv is corrected in place and the correction's run loads
    before the first takes the district's lock. The first then put the uncorrected scores back, and both said OK."""
    from .helpers import set_column
    settings = make_settings(tmp_path / "home")
    drop = prepare_drop(settings)
    with instance_for(settings):
        pass  # Dagster's instance storage made once, before two processes use it
    go = tmp_path / "go"
    env = {**os.environ, "MTSS_HOME": str(settings.home), "MTSS_FAULT": f"before_district_lock:wait={go}"}
    first = subprocess.Popen([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-01"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while _runs_in_warehouse_load(settings) < 1 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
        assert _runs_in_warehouse_load(settings) == 1, "the first run never reached its load"
        set_column(drop / "SR.csv", "ScaledScore", "777")
        assert run_drop(settings).outcome == "loaded"  # the correction, received and loaded meanwhile
    finally:
        go.touch()
    out, err = first.communicate(timeout=180)
    assert first.returncode == 4, out + err  # superseded
    assert "SUPERSEDED: belleville/2026-11-01: version_is_latest: superseded: other bytes of belleville/2026-11-01 (" \
        "version " in out, out
    engine = make_engine(settings.warehouse_url)
    try:
        results, audit = read_table(engine, assessment_results), read_table(engine, ingestion_files)
    finally:
        engine.dispose()
    assert set(results.filter(results["Subject"] == "SR")["ScaledScore"]) == {777}
    outcomes = dict(audit.filter(audit["FileName"] == "SR.csv").sort("ReceivedAt").select("DropVersion", "Outcome")
                    .iter_rows())
    assert list(outcomes.values()) == ["superseded", "loaded"], outcomes


@pytest.mark.persistent_instance
@pytest.mark.parametrize("paused", ["after_receipt", "before_lock"])
def test_of_two_receipts_of_a_drop_corrected_in_place_the_one_that_read_later_is_the_drops(tmp_path, paused):
    """SR.csv corrected in place, its size and time kept, while the CLI's run was paused: after reading (its bytes
    the uncorrected ones), or after listing, before reading (its bytes the correction). Meanwhile the drop's run
    loaded what was there. A run that read first recorded its receipt last, the audit's newest, and loaded the
    uncorrected scores over the correction, both saying OK; taken the other way, a run that listed first but read the
    correction was refused, and the uncorrected scores stayed."""
    settings = make_settings(tmp_path / "home")
    drop = prepare_drop(settings)
    with instance_for(settings):
        pass
    go = tmp_path / "go"
    env = {**os.environ, "MTSS_HOME": str(settings.home), "MTSS_FAULT": f"{paused}:wait={go}"}
    first = subprocess.Popen([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-01"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sr = drop / "SR.csv"
    try:
        deadline = time.monotonic() + 180
        while not list(settings.staging_dir.glob("*/.*-2026-11-01-*")) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        if paused == "before_lock":
            assert run_drop(settings).outcome == "loaded"  # the drop as first sent, received and loaded meanwhile
        before, text = sr.stat(), sr.read_text()
        frame = pl.read_csv(sr, infer_schema=False)
        score = frame["ScaledScore"][0]
        new = str(int(score) - 1 if score.endswith("9") else int(score) + 1)  # one score, in place, as long
        frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(new)).otherwise("ScaledScore")
                           .alias("ScaledScore")).write_csv(sr)
        os.utime(sr, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert sr.stat().st_size == before.st_size and sr.read_text() != text
        if paused == "after_receipt":
            assert run_drop(settings).outcome == "loaded"  # the correction, received and loaded meanwhile
        held = _scores(settings)
    finally:
        go.touch()
    out, err = first.communicate(timeout=180)
    if paused == "after_receipt":  # it read the uncorrected bytes, before the run that loaded the correction
        assert first.returncode == 1, out + err
        assert ("received again while this receipt was read, with other bytes read after these, and that receipt "
                "published first") in out
        assert _scores(settings) == held
    else:  # it read the correction, after the run that loaded the drop as first sent
        assert first.returncode == 0, out + err
        assert _scores(settings) != held and len(_scores(settings)) == len(held)


def _scores(settings) -> list:
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, assessment_results).sort("TestKey")["ScaledScore"].to_list()
    finally:
        engine.dispose()
