"""Alert sensors: one notification per event (lib/alerts.py builds and sends them), never a flood.

- drop_alert_sensor: each finished drop run, whoever launched it: a blocked drop, each halted file, a failed run.
- job_failure_alert_sensor: a failed run of any other job (staging retention, drop freshness).
The drop server outage is watched by sftp_drop_sensor (defs/sensors.py), overdue districts by the drop_freshness
asset on its schedule (defs/freshness.py). What was sent is kept with `stored` and `store` below.
"""
import json
import time

import dagster as dg

from ..lib.alerts import Alert, failed_run, remember, unsent
from ..report import drop_alerts
from .outcomes import finished_drop_runs
from .recovery import tag_own
from .resources import AlertResource

VERSION_TAG = "mtss/drop_version"  # set by sftp_drop_sensor on the runs it requests
SENT_FOR_DROP_RUNS = "mtss/alerts/sent/drop_runs"  # keys of the alerts sent, per sender (no two writers of one)
SENT_FOR_JOBS = "mtss/alerts/sent/job_failures"
ALERTED_TAG = "mtss/alerts"  # on a drop run the alert sensor has handled: how many alerts it made


def stored(instance: dg.DagsterInstance, name: str, default):
    """A value kept in the Dagster instance's key-value store (its run storage: SQLite or PostgreSQL alike).
    The outage state and the keys of the alerts sent live here, not in a cursor: a failing or cut-short sensor
    tick does not keep its cursor, a run or a schedule has none, and this store survives them and a restart."""
    value = instance.run_storage.get_cursor_values({name}).get(name)
    return json.loads(value) if value else default


def store(instance: dg.DagsterInstance, name: str, value) -> None:
    instance.run_storage.set_cursor_values({name: json.dumps(value)})


def send_once(instance: dg.DagsterInstance, name: str, alerting: AlertResource, log, alerts: list[Alert]) -> int:
    """Send the alerts whose key is not among those kept under `name`, each key stored before its alert goes out:
    a tick cut short (its 60 s deadline, with a channel timing out) and evaluated again, or a restart, never sends
    an alert twice; at worst one is lost. Returns how many were sent."""
    sent = stored(instance, name, [])
    fresh = unsent(alerts, sent)
    for alert in fresh:
        sent = remember(sent, [alert])
        store(instance, name, sent)
        alerting.send(log, [alert])
    return len(fresh)


def make_drop_alert_sensor(interval: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name="drop_alert_sensor", minimum_interval_seconds=interval,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="One alert per blocked drop, per halted file and per failed drop run")
    def drop_alert_sensor(context: dg.SensorEvaluationContext, alerting: AlertResource) -> dg.SkipReason:
        # The first tick starts from now: runs that ended before alerting was deployed are history, not news.
        after = float(context.cursor) if context.cursor else time.time()
        sent = 0
        for record, report in finished_drop_runs(context, after, ALERTED_TAG):
            run = record.dagster_run
            if report is not None:
                alerts = drop_alerts(report, run.run_id, run.job_name, run.status == dg.DagsterRunStatus.FAILURE,
                                     run.tags.get(VERSION_TAG, ""))
                # A run seen again (this tick was cut short before tagging it) alerts no one twice.
                sent += send_once(context.instance, SENT_FOR_DROP_RUNS, alerting, context.log, alerts)
                tag_own(context.instance, run.run_id, {ALERTED_TAG: str(len(alerts))})
            after = max(after, record.update_timestamp.timestamp())
        context.update_cursor(str(after))
        return dg.SkipReason(f"{sent} alert(s) sent")

    return drop_alert_sensor


def make_job_failure_alert_sensor(jobs: list, interval: int = 30) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="job_failure_alert_sensor", monitored_jobs=jobs, minimum_interval_seconds=interval,
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="One alert per failed run of the housekeeping and monitoring jobs")
    def job_failure_alert_sensor(context: dg.RunFailureSensorContext, alerting: AlertResource) -> None:
        # Dagster's run-failure cursor calls this once per failed run; send_once guards a tick evaluated again.
        run = context.dagster_run
        steps = list(dict.fromkeys(e.step_key for e in context.get_step_failure_events()))
        send_once(context.instance, SENT_FOR_JOBS, alerting, context.log,
                  [failed_run(run.run_id, run.job_name, None, steps)])

    return job_failure_alert_sensor
