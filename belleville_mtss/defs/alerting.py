"""Alert sensors: one notification per event (lib/alerts.py builds and sends them), never a flood.

- drop_alert_sensor: each finished drop run, whoever launched it: a blocked drop, each halted file, a failed run.
- job_failure_alert_sensor: a failed run of any other job (staging retention, drop freshness).
The drop server outage is watched by sftp_drop_sensor (defs/sensors.py), overdue districts by the drop_freshness
asset on its schedule (defs/freshness.py); both keep their state with `stored` and `store` below.
"""
import json
import time

import dagster as dg

from ..lib.alerts import failed_run, remember, unsent
from ..report import drop_alerts
from .outcomes import finished_drop_runs
from .resources import AlertResource

VERSION_TAG = "mtss/drop_version"  # set by sftp_drop_sensor on the runs it requests


def stored(instance: dg.DagsterInstance, name: str, default):
    """A value kept in the Dagster instance's key-value store (its run storage: SQLite or PostgreSQL alike).
    Outage and overdue state live here, not in a cursor: a failing sensor tick does not keep its cursor, a schedule
    has none, and this store survives both and a daemon restart."""
    value = instance.run_storage.get_cursor_values({name}).get(name)
    return json.loads(value) if value else default


def store(instance: dg.DagsterInstance, name: str, value) -> None:
    instance.run_storage.set_cursor_values({name: json.dumps(value)})


def make_drop_alert_sensor(interval: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name="drop_alert_sensor", minimum_interval_seconds=interval,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="One alert per blocked drop, per halted file and per failed drop run")
    def drop_alert_sensor(context: dg.SensorEvaluationContext, alerting: AlertResource) -> dg.SkipReason:
        # The first tick starts from now: runs that ended before alerting was deployed are history, not news.
        cursor = json.loads(context.cursor) if context.cursor else {"after": time.time(), "sent": []}
        after, found = cursor["after"], []
        for record, report in finished_drop_runs(context, after):
            run = record.dagster_run
            found += drop_alerts(report, run.run_id, run.job_name, run.status == dg.DagsterRunStatus.FAILURE,
                                 run.tags.get(VERSION_TAG, ""))
            after = max(after, record.update_timestamp.timestamp())
        fresh = unsent(found, cursor["sent"])  # a run seen again (its tags changed) alerts no one twice
        alerting.send(context.log, fresh)
        context.update_cursor(json.dumps({"after": after, "sent": remember(cursor["sent"], fresh)}))
        return dg.SkipReason(f"{len(fresh)} alert(s) sent" + (f": {', '.join(a.key for a in fresh)}" if fresh else ""))

    return drop_alert_sensor


def make_job_failure_alert_sensor(jobs: list, interval: int = 30) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="job_failure_alert_sensor", monitored_jobs=jobs, minimum_interval_seconds=interval,
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="One alert per failed run of the housekeeping and monitoring jobs")
    def job_failure_alert_sensor(context: dg.RunFailureSensorContext, alerting: AlertResource) -> None:
        # Dagster's run-failure cursor calls this once per failed run.
        run = context.dagster_run
        steps = list(dict.fromkeys(e.step_key for e in context.get_step_failure_events()))
        alerting.send(context.log, [failed_run(run.run_id, run.job_name, None, steps)])

    return job_failure_alert_sensor
