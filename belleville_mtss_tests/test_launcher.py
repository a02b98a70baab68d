"""The daemon's run launcher (belleville_mtss/launcher.py): a run launched through it runs in a process forked from
the warm one, and a run cancelled as the UI cancels it (the launcher's terminate) stops without loading."""
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from belleville_mtss.launcher import PID_TAG, PRELOAD, WarmRunLauncher
from belleville_mtss.lib.load.lock import district_lock
from belleville_mtss.lib.load.warehouse import make_engine, read_table, student_roster
from belleville_mtss.run import dagster_home
from .helpers import SMALL, prepare_drop

REPO = Path(__file__).resolve().parent.parent
DROP = "belleville/2026-11-01"


@pytest.fixture
def instance(settings, monkeypatch):
    for name, value in {"MTSS_HOME": str(settings.home), "DAGSTER_HOME": str(dagster_home(settings))}.items():
        monkeypatch.setenv(name, value)  # what the warm process (started by the launcher, below) runs with
    config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    config.write_text(config.read_text() + "run_launcher:\n  module: belleville_mtss.launcher\n"
                      "  class: WarmRunLauncher\nrun_monitoring:\n  cancellation_thread_poll_interval_seconds: 1\n")
    with dg.DagsterInstance.get() as inst:
        yield inst
    multiprocessing.forkserver._forkserver._stop()  # the next test's warm process reads its own environment


def test_every_module_the_warm_process_preloads_is_there_to_import():
    """The forkserver passes over a preloaded module that fails to import, so a module renamed by a Dagster release
    would silently go back to being imported by every run: here it fails."""
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)


def _launch(instance: dg.DagsterInstance) -> str:
    recon = ReconstructableRepository.for_module("belleville_mtss.definitions", "defs", str(REPO)) \
        .get_reconstructable_job("drop_job")
    instance.add_dynamic_partitions("drops", [DROP])
    run = instance.create_run_for_job(recon.get_definition(), job_code_origin=recon.get_python_origin(),
                                      tags={"dagster/partition": DROP})
    instance.launch_run(run.run_id, workspace=None)
    return run.run_id


def _wait(instance, run_id: str, until, seconds: float = 120) -> dg.DagsterRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if until(run):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {run.status} after {seconds} s")


def test_a_run_launched_warm_loads_its_drop_and_a_cancelled_one_stops_without_loading(settings, instance):
    assert type(instance.run_launcher).__name__ == "WarmRunLauncher"
    prepare_drop(settings)
    engine = make_engine(settings.warehouse_url)
    with district_lock(engine, 107873, 5):  # the run reaches its load and waits there for the district
        run_id = _launch(instance)
        _wait(instance, run_id, lambda r: any(
            e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
            and e.dagster_event.step_key == "warehouse_load" for e in instance.all_logs(r.run_id)))
        assert instance.run_launcher.terminate(run_id)
        run = _wait(instance, run_id, lambda r: r.is_finished, 60)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert read_table(engine, student_roster).height == 0  # nothing loaded
    assert not instance.run_launcher.terminate(run_id)  # a finished run is not cancelled again
    # the next run, forked from the same warm process, loads the drop
    second = _wait(instance, _launch(instance), lambda r: r.is_finished)
    assert second.status == dg.DagsterRunStatus.SUCCESS
    started = [e.message for r in (run_id, second.run_id) for e in instance.all_logs(r)
               if "forked from the warm process" in e.message]
    assert len(started) == 2 and len({m.split("(pid: ")[2] for m in started}) == 1
    assert read_table(engine, student_roster).height == SMALL.students
    engine.dispose()


def test_a_run_whose_process_is_killed_is_found_dead_by_run_monitoring(settings, instance):
    """What the daemon's run monitoring asks: alive while the run waits at its load, gone once its process is
    killed, whether this launcher started it or an earlier daemon process did (by its pid)."""
    prepare_drop(settings)
    engine = make_engine(settings.warehouse_url)
    with district_lock(engine, 107873, 5):
        run_id = _launch(instance)
        run = _wait(instance, run_id, lambda r: any(
            e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
            and e.dagster_event.step_key == "warehouse_load" for e in instance.all_logs(r.run_id)))
        assert instance.run_launcher.supports_check_run_worker_health
        for launcher in (instance.run_launcher, WarmRunLauncher()):
            assert launcher.check_run_worker_health(run).status.value == "RUNNING"
        os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING" \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        for launcher in (instance.run_launcher, WarmRunLauncher()):
            assert launcher.check_run_worker_health(run).status.value == "FAILED"
    assert read_table(engine, student_roster).height == 0  # killed before its load: nothing written
    engine.dispose()


def test_run_monitoring_finds_a_run_dead_whose_process_id_another_process_was_given():
    """After a restart, process ids are given out again: a run launched before it, judged by its id alone, looked
    alive for as long as another process had that id (here this one: an id the system gives to anyone)."""
    from dagster._core.launcher.base import WorkerStatus
    from belleville_mtss.launcher import STARTED_TAG, process_started
    launcher = WarmRunLauncher()
    tags = {PID_TAG: str(os.getpid()), STARTED_TAG: "1"}  # a process that began at boot, not this one
    run = dg.DagsterRun(job_name="drop_job", run_id="before-the-restart", tags=tags)
    assert launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
    alive = run.with_tags({**tags, STARTED_TAG: process_started(os.getpid())})
    assert launcher.check_run_worker_health(alive).status == WorkerStatus.RUNNING


def test_run_monitoring_judges_a_run_no_launcher_started_by_where_the_run_says_it_lives():
    """`belleville-mtss run` executes its run in its own process, with no launcher's pid tag: run monitoring failed it
    while it was alive (its files then `failed` in the audit though it loaded). It is judged by the tags the run
    sets itself (recovery's `claim`), and left alone where it has not said yet or lives on another host."""
    import socket
    from dagster._core.launcher.base import WorkerStatus
    from belleville_mtss.defs.recovery import HOST, PID, STARTED_AT
    from belleville_mtss.launcher import process_started
    launcher = WarmRunLauncher()

    def health(**tags):
        own = {**tags, **{f"{k}/run": "cli-run" for k in tags}}
        return launcher.check_run_worker_health(dg.DagsterRun(job_name="drop_job", run_id="cli-run", tags=own)).status
    here, me = socket.gethostname(), str(os.getpid())
    assert health(**{HOST: here, PID: me, STARTED_AT: process_started(os.getpid())}) == WorkerStatus.RUNNING
    assert health(**{HOST: here, PID: me, STARTED_AT: "1"}) == WorkerStatus.FAILED  # its id given to another since
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert health(**{HOST: here, PID: str(dead.pid)}) == WorkerStatus.FAILED
    assert health() == WorkerStatus.RUNNING  # not claimed yet
    assert health(**{HOST: "another-host", PID: str(dead.pid)}) == WorkerStatus.RUNNING
