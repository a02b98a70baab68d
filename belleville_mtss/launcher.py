"""The run launcher of the daemon on one machine: each run in its own process, forked from a process that has
imported the code location once, instead of a new interpreter per run that imports Dagster, polars, pandera and
our code again (about 2 CPU-seconds before a step runs; docs/performance.md). A run still has its own process, so a
crash or a leak ends with the run, and a run is cancelled from the UI as Dagster cancels any run: the run's own
watcher sees it marked canceling and interrupts it.

The warm process imports the code as it is when the daemon starts it: restart the daemon after deploying new code
(as the code server is restarted). Configured in deploy/dagster.yaml; docs/deploy.md."""
from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._serdes import ConfigurableClass, ConfigurableClassData

# What every run imports, imported once by the warm process: Dagster, polars, pandera and our code (the definitions);
# the production instance's storages and the drivers they and the warehouse use; paramiko, for a drop on an SFTP
# server; pandera's polars checks and the parts of Dagster that execute a run, which are imported on first use. A
# run forked from it imported 394 modules of its own before these were added, 48 since (docs/performance.md).
PRELOAD = ["belleville_mtss.definitions", "belleville_mtss.instance_storage_pg", "psycopg", "psycopg2.extras",
           "paramiko", "pandera.backends.polars.container", "pandera.backends.polars.components",
           "pandera.backends.polars.builtin_checks", "dagster._grpc.impl",
           "dagster._core.execution.run_cancellation_thread", "dagster._utils.hosted_user_process",
           "dagster._core.storage.local_compute_log_manager", "dagster._core.executor.in_process",
           "dagster._core.execution.plan.active", "dagster._core.storage.legacy_storage",
           "dagster._core.instance.factory"]
PID_TAG = "mtss/run_pid"  # the run's process, for run monitoring (one machine: the daemon's)
STARTED_TAG = "mtss/run_pid_started"  # when that process began (process_started)


def _run_worker(run_id: str, instance_ref) -> None:
    """The run, in the forked process: what `dagster api execute_run` does, less the imports already made."""
    from dagster._core.execution.run_cancellation_thread import start_run_cancellation_thread
    from dagster._grpc.impl import core_execute_run
    from dagster._utils.hosted_user_process import recon_job_from_origin
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        if run is None:
            return
        watcher, stop = start_run_cancellation_thread(instance, run_id)  # a cancel from the UI interrupts us
        try:
            instance.report_engine_event(f"Started process for run (pid: {os.getpid()}), forked from the warm "
                                         f"process (pid: {os.getppid()}).", run,
                                         EngineEventData.in_process(os.getpid()))
            for _ in core_execute_run(recon_job_from_origin(run.job_code_origin), run, instance,
                                      inject_env_vars=False):
                pass
        except BaseException:  # noqa: BLE001 - core_execute_run has written the failure to the run's events
            pass
        finally:
            stop.set()
            watcher.join(5)
            instance.report_engine_event(f"Process for run exited (pid: {os.getpid()}).", run)


def process_started(pid: int) -> str | None:
    """When the process of `pid` began (clock ticks since boot: /proc/<pid>/stat, field 22), None where unknown. A
    process id is given out again once its process ends, soon after a restart: its start tells the two apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command's name, which may hold spaces


def _alive(pid: int, started: str | None) -> bool:
    """The process of `pid` runs, and is the one that began at `started` (where that is known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or process_started(pid) in (None, started)


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a process forked from a warm one (multiprocessing's forkserver, which imports
    PRELOAD once)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._context = None
        self._running: dict[str, Any] = {}  # run id -> its process, until it has ended
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data)

    def _forkserver(self):
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            self._context = context
        return self._context

    def launch_run(self, context: LaunchRunContext) -> None:
        self._running = {r: p for r, p in self._running.items() if p.is_alive()}  # ended ones reaped
        run = context.dagster_run
        process = self._forkserver().Process(target=_run_worker, args=(run.run_id, self._instance.get_ref()),
                                             name=f"dagster-run-{run.run_id[:8]}")
        process.start()
        self._running[run.run_id] = process
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(process.pid),
                                                 STARTED_TAG: process_started(process.pid) or ""})

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        """For run monitoring (deploy/dagster.yaml): a started run whose process is gone (killed, out of memory)
        is failed by the daemon, and its district's next drop no longer waits behind it."""
        process = self._running.get(run.run_id)
        if process is not None:
            alive = process.is_alive()
        elif PID_TAG in run.tags:  # launched before this daemon process started: by its pid, on this machine
            alive = _alive(int(run.tags[PID_TAG]), run.tags.get(STARTED_TAG))
        else:  # not launched by a launcher (`belleville-mtss run`, a replay): by where the run says it lives
            from .defs.recovery import HOST, PID, STARTED_AT, own_tag
            pid = own_tag(run, PID) or ""
            if own_tag(run, HOST) != socket.gethostname() or not pid.isdigit():
                # not yet said, or another host's: monitoring fails any status but RUNNING, and this run may live
                return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched here; its process is not known")
            alive = _alive(int(pid), own_tag(run, STARTED_AT))
        return (CheckRunHealthResult(WorkerStatus.RUNNING) if alive
                else CheckRunHealthResult(WorkerStatus.FAILED, "the run's process is gone"))

    def terminate(self, run_id: str) -> bool:
        """Marks the run canceling: its process's watcher interrupts it, from whichever process asked."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        return True

    def join(self, timeout: float = 30) -> None:
        for process in self._running.values():
            process.join(timeout)
