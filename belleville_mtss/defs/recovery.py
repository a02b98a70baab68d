"""Recovery at the next start: a run that died (killed, its machine restarted, its connection lost) leaves its
Dagster run STARTED and its files `received` in the audit. The next run of the district finds it and settles it:
the run marked failed, its files `interrupted` (a finished run's left-over files `failed`), one error row each.

A run says where it lives (host, process id and when that process began, as run tags) when it starts, so a later run
on the same host can tell a dead process from a live one, and from a new process given the same id. Dagster's run
monitoring (deploy/dagster.yaml) asks the launcher, which judges a run by the same tags where no launcher started it;
a run on another host it leaves alone. The staged warehouse rows of a dead load are removed
by the district's next load (lib/load/warehouse.py).
"""
from __future__ import annotations

import os
import socket

import dagster as dg

from ..launcher import process_started
from ..lib.load.errors import ErrorRecord
from ..lib.columns import WAREHOUSE_TABLES as WAREHOUSE
from ..lib.load.warehouse import mark_files, undecided_runs

HOST, PID, DISTRICT = "mtss/host", "mtss/pid", "mtss/district"
STARTED_AT = "mtss/pid_started"  # when the process began, in clock ticks since boot, where the system says (Linux)
LIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def own_tag(run: dg.DagsterRun, tag: str) -> str | None:
    """The run's `tag` where the run set it itself (`tag_own`), else None. A run re-executed from the UI starts with
    every tag of the run it re-executes, among them those that say what became of that run: where its process
    lived, its outcome, its alerts."""
    return run.tags.get(tag) if run.tags.get(f"{tag}/run") == run.run_id else None


def parent_of(run: dg.DagsterRun) -> str | None:
    """The run this one re-executes: Dagster's field, or its tag (the UI's re-execution sets both)."""
    return run.parent_run_id or run.tags.get("dagster/parent_run_id")


def tag_own(instance: dg.DagsterInstance, run_id: str, tags: dict[str, str]) -> None:
    """Tags the run with what is true of it alone, each tag beside the run it is of (`own_tag`)."""
    instance.add_run_tags(run_id, own_tags(run_id, tags))


def process_tags(district: str) -> dict[str, str]:
    """The tags that say a run is the district's and where its process lives (`_dead` reads them)."""
    pid = os.getpid()
    return {DISTRICT: district, HOST: socket.gethostname(), PID: str(pid), STARTED_AT: process_started(pid) or ""}


def own_tags(run_id: str, tags: dict[str, str]) -> dict[str, str]:
    """`tags` as the run's own (`own_tag`): each beside the run it is of."""
    return {**tags, **{f"{k}/run": run_id for k in tags}}


def claim(context, district: str) -> None:
    """Tags this run with its district and where its process lives."""
    tag_own(context.instance, context.run.run_id, process_tags(district))


def _dead(run: dg.DagsterRun) -> bool:
    """A run whose process is known to be gone: tagged on this host by itself, and no process has its id."""
    pid = own_tag(run, PID) or ""
    if own_tag(run, HOST) != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user has that id: alive, unless it began after the run's
        pass
    began = own_tag(run, STARTED_AT)
    return bool(began) and process_started(int(pid)) not in (None, began)


def loads(run: dg.DagsterRun) -> bool:
    """Whether the run was to load the warehouse (every drop_job run but those of a few of its assets)."""
    return run.asset_selection is None or any(k.to_user_string() in WAREHOUSE for k in run.asset_selection)


def recover(context, error_log, district) -> list[str]:
    """Settles the district's runs that ended without finishing or without deciding their files: each dead run
    marked failed, the files it left `received` marked `interrupted` (a finished run's, `failed`), one error row per
    run. Returns the runs settled."""
    instance, engine, this = context.instance, error_log.engine(), context.run.run_id
    dead = {r.run_id: r for r in instance.get_runs(dg.RunsFilter(tags={DISTRICT: district.district}, statuses=LIVE))
            if r.run_id != this and _dead(r)}
    for run in dead.values():
        instance.report_run_failed(run, "its process ended without finishing (killed, or its machine restarted); "
                                        "found by a later run of the district")
    settled = dict.fromkeys(dead, "")  # run -> the drop whose files it left undecided
    for run_id, drop_id in undecided_runs(engine, district.account_info_id, this):
        run = dead.get(run_id) or instance.get_run_by_id(run_id)
        if run is None or (run_id not in dead and run.status in LIVE):
            continue  # another instance's run, or one under way
        if run_id not in dead and run.status == dg.DagsterRunStatus.SUCCESS and not loads(run):
            continue  # some of the drop's assets, from the asset graph, none a load: its files were received
        mark_files(engine, drop_id, run_id, "interrupted" if run_id in dead else "failed")
        settled[run_id] = drop_id
    for run_id, drop_id in settled.items():
        # the dead run's own drop: every run has Dagster's partition tag (the sensor's, the UI's, the command line's)
        key = drop_id or dead[run_id].tags.get("dagster/partition") or context.partition_key
        said = (f"its files are marked {'interrupted' if run_id in dead else 'failed'}; run the drop again to load it"
                if drop_id else "it left no file undecided in the audit (the audit says what was loaded)")
        # a dead run ended without finishing; a finished one (failed, its outcome not yet tagged) only left its files
        ended = "ended without finishing" if run_id in dead else "ended without deciding its files"
        error_log.record(context, key, [ErrorRecord(
            "run", "interrupted" if run_id in dead else "failed", f"run {run_id[:8]} {ended}; {said} (found by run "
                                                                  f"{this[:8]})")], run_id=run_id)
    return list(settled)
