"""drop_outcome_sensor: every finished drop run, whoever launched it (the drop sensor, the UI, the CLI), is tagged
with what happened to the drop (`mtss/outcome`: loaded, partial, blocked, superseded, failed, or received for a run
of some of its assets that loads nothing), so the run list says it; a
failed run's files still `received` in the audit become `failed` (a run that ended never leaves them undecided)."""
import datetime as dt

import dagster as dg

from ..lib.load.errors import settle_failed_run
from ..report import OUTCOME_TAG, DropReport
from .jobs import drop_job
from .partitions import drops as drop_partitions
from .recovery import own_tag, tag_own
from .resources import ErrorLogResource

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


def is_drop_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A run of a drop: drop_job's, or assets materialized from the asset graph (Dagster's implicit job) for one of
    the drops' partitions; never another code location's partitioned run on the same instance."""
    key = run.tags.get("dagster/partition")
    return run.job_name == drop_job.name or (run.job_name.startswith("__ASSET_JOB") and key is not None
                                             and instance.has_dynamic_partition(drop_partitions.name, key))


def finished_drop_runs(context, cursor: float, handled_tag: str, limit: int = 50):
    """Finished drop runs (`is_drop_run`) updated after `cursor` (a timestamp), oldest first, with their reports
    (None for another job's run, and for those already carrying `handled_tag` of their own: `own_tag`, a re-executed
    run is handled afresh): tagging a run moves its update time, so a run comes back once more after it was handled;
    its record is read again, never its event log."""
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, updated_after=dt.datetime.fromtimestamp(cursor, dt.timezone.utc)),
        limit=limit, ascending=True)
    for record in records:
        run = record.dagster_run
        if not is_drop_run(context.instance, run) or own_tag(run, handled_tag) is not None:
            yield record, None
            continue
        events = [e.dagster_event for e in context.instance.all_logs(run.run_id) if e.dagster_event]
        yield record, DropReport.from_events(run.tags.get("dagster/partition", "?"), events)


def make_drop_outcome_sensor(interval: int = 30) -> dg.SensorDefinition:
    return dg.sensor(name="drop_outcome_sensor", minimum_interval_seconds=interval,
                     default_status=dg.DefaultSensorStatus.RUNNING,
                     description="Tags every finished drop run with its outcome: loaded, partial, blocked, superseded, "
                                 "failed or received",
                     )(_tag_outcomes)


def _tag_outcomes(context: dg.SensorEvaluationContext, error_log: ErrorLogResource) -> dg.SkipReason:
    cursor = float(context.cursor or 0)
    tagged = 0
    for record, report in finished_drop_runs(context, cursor, OUTCOME_TAG):
        run = record.dagster_run
        if report is not None:
            if report.outcome == "failed":
                settle_failed_run(error_log.engine(), error_log.registry.registry,
                                  run.tags.get("dagster/partition", "?"), run.run_id, report.causes)
            tag_own(context.instance, run.run_id, {OUTCOME_TAG: report.outcome})
            tagged += 1
        cursor = max(cursor, record.update_timestamp.timestamp())
    context.update_cursor(str(cursor))
    return dg.SkipReason(f"tagged {tagged} finished drop run(s) with their outcome")


drop_outcome_sensor = make_drop_outcome_sensor()
