"""Recovery at the next start (issue 34): a run killed (SIGKILL) at each fault point of the load, then the next run of
the district: no staged row left, no audit row left `received`, no Dagster run left STARTED, and the warehouse as a
clean run leaves it."""
import os
import signal
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from belleville_mtss.lib.load.warehouse import (
    STAGING, assessment_results, count_rows, ingestion_errors, ingestion_files, make_engine, read_table, student_roster,
)
from belleville_mtss.run import instance_for, run_drop
from .conftest import make_settings
from .helpers import SMALL, held_rows, prepare_drop
LOAD_POINTS = ["after_stage", "in_apply", "after_commit", "before_unstage"]
# on PostgreSQL the two that differ in what the warehouse holds: nothing committed, and committed with rows staged
POINTS = {"sqlite": LOAD_POINTS, "postgresql": ["in_apply", "after_commit"]}


@pytest.mark.persistent_instance
def test_a_run_killed_at_each_fault_point_of_the_load_is_settled_by_the_next_run(backend, tmp_path, monkeypatch):
    points = POINTS["sqlite" if backend.warehouse_url.startswith("sqlite") else "postgresql"]
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    clean = make_settings(tmp_path / "clean")
    prepare_drop(clean, SMALL)
    assert run_drop(clean).outcome == "loaded"
    expected = held_rows(clean)
    prepare_drop(backend, SMALL)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(MTSS_HOME=str(backend.home), MTSS_WAREHOUSE_URL=backend.warehouse_url,
               MTSS_PROD_DB_URL=backend.prod_db_url)
    for n, point in enumerate(points, start=1):
        killed = subprocess.run([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-01"],
                                env={**env, "MTSS_FAULT": f"{point}:kill"}, capture_output=True, text=True,
                                timeout=300)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stdout[-1500:], killed.stderr[-1500:])
        report = run_drop(backend)  # the next run of the district
        assert report.outcome == "loaded", (point, report.render())
        held = held_rows(backend)
        assert all(held[t].equals(expected[t]) for t in expected), point  # as a clean run left it
        engine = make_engine(backend.warehouse_url)
        assert [count_rows(engine, t) for t in STAGING.values()] == [0, 0, 0], point
        audit = read_table(engine, ingestion_files)
        assert "received" not in set(audit["Outcome"]), point
        assert audit.filter(pl.col("Outcome") == "interrupted").height >= 4, point  # the killed run's files
        interrupted = read_table(engine, ingestion_errors).filter(pl.col("Reason") == "interrupted")
        assert interrupted.height == n, point  # one row per killed run
        engine.dispose()
        with instance_for(backend) as instance:
            statuses = [r.status for r in instance.get_runs()]
        assert dg.DagsterRunStatus.STARTED not in statuses, point
        assert statuses.count(dg.DagsterRunStatus.FAILURE) == n, point


def test_a_failure_after_the_commit_is_reported_as_committed_and_the_next_load_clears_what_it_left(backend,
                                                                                                    monkeypatch):
    # removing the staged rows fails after the commit (a full disk, say): the load stands, and says so
    prepare_drop(backend, SMALL)
    monkeypatch.setenv("MTSS_FAULT", "before_unstage:raise")
    report = run_drop(backend)
    assert report.outcome == "loaded", report.render()
    engine = make_engine(backend.warehouse_url)
    assert count_rows(engine, student_roster) == SMALL.students
    assert [count_rows(engine, t) for t in STAGING.values()] != [0, 0, 0]  # left behind, on purpose
    assert "load_failed" not in set(read_table(engine, ingestion_errors)["Reason"])
    assert set(read_table(engine, ingestion_files)["Outcome"]) <= {"loaded", "duplicate"}
    monkeypatch.delenv("MTSS_FAULT")
    assert run_drop(backend).outcome == "loaded"
    assert [count_rows(engine, t) for t in STAGING.values()] == [0, 0, 0]  # the district's next load cleared them
    engine.dispose()


def test_a_lost_lock_session_aborts_its_apply_and_the_run_says_rolled_back(pg_database, tmp_path, monkeypatch):
    # PostgreSQL only: SQLite's lock is a file lock, held by the process itself, which cannot lose it and go on
    import threading
    import time
    import sqlalchemy as sa
    from belleville_mtss.lib.load.lock import PG_LOCK_CLASS
    backend = make_settings(tmp_path / "mtss", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    prepare_drop(backend, SMALL)
    admin = sa.create_engine(backend.warehouse_url, isolation_level="AUTOCOMMIT")
    terminated = []

    def terminate_the_lock_holder():  # the session holding the district's advisory lock, mid-apply
        deadline = time.time() + 120
        with admin.connect() as conn:
            while time.time() < deadline and not terminated:
                # the lock's session of this test's database (another test's load of the same district, in another
                # database of the server, holds a lock of the same key), once inside the apply's transaction
                pid = conn.execute(sa.text(
                    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = "
                    "'advisory' AND l.classid = :c AND l.objid = 107873 AND l.granted AND a.state = 'idle in "
                    "transaction' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                    {"c": PG_LOCK_CLASS}).scalar()
                if pid:
                    terminated.extend(conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalars())
                time.sleep(0.05)

    killer = threading.Thread(target=terminate_the_lock_holder)
    killer.start()
    monkeypatch.setenv("MTSS_FAULT", "in_apply:sleep=3")
    report = run_drop(backend)
    killer.join()
    assert terminated == [True]
    assert report.outcome == "failed" and "failed and was rolled back" in report.verdict(), report.verdict()
    engine = make_engine(backend.warehouse_url)
    assert count_rows(engine, student_roster) == 0 and count_rows(engine, assessment_results) == 0  # truly
    monkeypatch.delenv("MTSS_FAULT")
    assert run_drop(backend).outcome == "loaded"  # the lock went with its session: the next load takes it
    assert count_rows(engine, student_roster) == SMALL.students
    engine.dispose()
    admin.dispose()


def test_a_run_killed_before_recording_a_file_is_settled_under_its_own_drop_and_a_reused_process_id(settings,
                                                                                                     new_instance):
    """After a container restart, process ids are given out again: the killed run's id was a live process (often
    the next run itself), so the run was never settled. And its error row went under the drop of the run that
    found it, when only the drop sensor's runs named their drop in a tag of the project's."""
    import socket
    from belleville_mtss.defs.recovery import DISTRICT, HOST, PID, STARTED_AT, _dead
    from belleville_mtss.launcher import process_started
    mine = str(os.getpid())
    tags = {DISTRICT: "belleville", HOST: socket.gethostname(), PID: mine, STARTED_AT: "1",
            "dagster/partition": "belleville/2026-11-20"}  # this process's id, of a process that began at boot
    killed = dg.DagsterRun(job_name="drop_job", run_id="killed-run", status=dg.DagsterRunStatus.STARTED,
                           tags={**tags, **{f"{k}/run": "killed-run" for k in (DISTRICT, HOST, PID, STARTED_AT)}})
    assert _dead(killed)
    alive = killed.with_tags({**killed.tags, STARTED_AT: process_started(os.getpid())})
    assert not _dead(alive)
    prepare_drop(settings)
    with new_instance() as instance:
        instance.add_run(killed)
        assert run_drop(settings, instance=instance).outcome == "loaded"
        assert instance.get_run_by_id("killed-run").status == dg.DagsterRunStatus.FAILURE
    engine = make_engine(settings.warehouse_url)
    try:
        logged = read_table(engine, ingestion_errors).filter(pl.col("Stage") == "run")
    finally:
        engine.dispose()
    # under the run it is of: the outcome sensor, settling that failed run later, finds it logged (and adds no row)
    assert logged.select("DropId", "Reason", "RunId").rows() == [("belleville/2026-11-20", "interrupted", "killed-run")]
    assert "left no file undecided" in logged["Message"][0]


def test_a_run_that_failed_leaving_its_files_undecided_is_not_said_to_have_ended_without_finishing(settings,
                                                                                                  new_instance):
    # The district's next run may start before the outcome sensor's tick decides a failed run's files: it settled
    # them, saying the run "ended without finishing", the words for a killed one.
    from belleville_mtss.lib.load.warehouse import record_received
    from belleville_mtss.lib.receive.drops import StagedFile
    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        failed = dg.DagsterRun(job_name="drop_job", run_id="failed-run", status=dg.DagsterRunStatus.FAILURE,
                               tags={"dagster/partition": "belleville/2026-11-20"})
        instance.add_run(failed)
        engine = make_engine(settings.warehouse_url)
        record_received(engine, "belleville/2026-11-20", 107873, "v1", [StagedFile("SR.csv", 1, "0" * 64)],
                        "failed-run")
        engine.dispose()
        assert run_drop(settings, instance=instance).outcome == "loaded"
    engine = make_engine(settings.warehouse_url)
    try:
        logged = read_table(engine, ingestion_errors).filter(pl.col("Stage") == "run")
        outcome = read_table(engine, ingestion_files).filter(pl.col("RunId") == "failed-run")["Outcome"].to_list()
    finally:
        engine.dispose()
    assert outcome == ["failed"] and logged.height == 1
    assert "ended without deciding its files; its files are marked failed" in logged["Message"][0]
    assert "without finishing" not in logged["Message"][0]


def _drop_job(home: str):
    """drop_job as a reconstructable job: a re-execution runs it again from this module, with `home` as MTSS_HOME
    (an argument, not the environment: Dagster keeps a job it reconstructed for the process, by its arguments)."""
    from belleville_mtss.definitions import build_definitions
    from belleville_mtss.lib.config import load_settings
    return build_definitions(load_settings({**os.environ, "MTSS_HOME": home})).resolve_job_def("drop_job")


def _re_execute(settings, instance, parent_run):
    """The run re-executed from its failure, as the UI does it: with the parent's tags."""
    tags = {k: v for k, v in parent_run.tags.items() if not k.startswith("dagster/") or k == "dagster/partition"}
    job = dg.build_reconstructable_job("belleville_mtss_tests.test_recovery", "_drop_job",
                                       reconstructable_kwargs={"home": str(settings.home)})
    return dg.execute_job(job, instance=instance, raise_on_error=False, tags=tags,
                          reexecution_options=dg.ReexecutionOptions.from_failure(parent_run.run_id, instance))


def test_a_run_re_executed_from_failure_that_loads_the_drop_marks_its_files_loaded(tmp_path, monkeypatch,
                                                                                   new_instance):
    # A re-execution from failure runs only the failed steps: it never receives the drop, so it has no audit rows
    # of its own, and its parent's stayed `failed` while the warehouse held the drop; `status` said it failed.
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "mtss"))
    settings = make_settings(tmp_path / "mtss")
    prepare_drop(settings)
    with new_instance() as instance:
        monkeypatch.setenv("MTSS_FAULT", "in_apply:raise")  # the load fails, nothing written
        parent = run_drop(settings, instance=instance)
        monkeypatch.delenv("MTSS_FAULT")
        assert parent.outcome == "failed"
        (parent_run,) = instance.get_runs()
        with _re_execute(settings, instance, parent_run) as child:
            assert child.success
    engine = make_engine(settings.warehouse_url)
    try:
        audit = read_table(engine, ingestion_files)
    finally:
        engine.dispose()
    assert set(audit["Outcome"]) == {"loaded"} and set(audit["RunId"]) == {parent_run.run_id}


@pytest.mark.persistent_instance
def test_a_run_re_executed_after_the_drop_was_corrected_marks_the_receipt_it_loads(tmp_path, monkeypatch,
                                                                                  new_instance):
    """The run of a drop's first version failed in its load; the drop was corrected in place and the correction's
    run failed too; the first run, re-executed from the UI, loads the frames kept since (the correction's). It marked
    the first version's files loaded (the audit said the uncorrected SR.csv was loaded), then, mended by halves, no
    file at all (the audit said nothing was, while the warehouse held the correction)."""
    from .helpers import set_column
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "mtss"))
    settings = make_settings(tmp_path / "mtss")
    drop = prepare_drop(settings)
    with new_instance() as instance:
        monkeypatch.setenv("MTSS_FAULT", "in_apply:raise")
        assert run_drop(settings, instance=instance).outcome == "failed"
        (parent_run,) = instance.get_runs()
        set_column(drop / "SR.csv", "ScaledScore", "777")
        assert run_drop(settings, instance=instance).outcome == "failed"
        monkeypatch.delenv("MTSS_FAULT")
        with _re_execute(settings, instance, parent_run) as child:
            assert child.success
    engine = make_engine(settings.warehouse_url)
    try:
        audit, results = read_table(engine, ingestion_files), read_table(engine, assessment_results)
    finally:
        engine.dispose()
    assert set(results.filter(pl.col("Subject") == "SR")["ScaledScore"]) == {777}
    by_run = {run: set(rows["Outcome"]) for (run,), rows in audit.group_by(["RunId"])}
    assert by_run.pop(parent_run.run_id) == {"failed"}
    assert list(by_run.values()) == [{"loaded"}]


@pytest.mark.persistent_instance
def test_a_run_killed_before_its_first_step_tagged_it_is_settled_by_the_next_run(settings, monkeypatch):
    """A run killed as Dagster started it, before its receipt tagged it as the district's, stayed STARTED for good,
    with no error row: no later run of the district could find it. It carries the district's tags from its start."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    prepare_drop(settings, SMALL)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(MTSS_HOME=str(settings.home), MTSS_WAREHOUSE_URL=settings.warehouse_url,
               MTSS_PROD_DB_URL=settings.prod_db_url, MTSS_FAULT="before_claim:kill")
    killed = subprocess.run([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-01"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, (killed.stdout[-1500:], killed.stderr[-1500:])
    assert run_drop(settings).outcome == "loaded"
    with instance_for(settings) as instance:
        statuses = sorted(r.status.value for r in instance.get_runs())
    assert statuses == ["FAILURE", "SUCCESS"]
    engine = make_engine(settings.warehouse_url)
    interrupted = read_table(engine, ingestion_errors).filter(pl.col("Reason") == "interrupted")
    engine.dispose()
    assert interrupted.height == 1
