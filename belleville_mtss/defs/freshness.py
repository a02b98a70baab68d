"""drop_freshness: how long ago each registry district last sent a drop, as numeric metadata the UI plots over
time, and one alert per overdue district (no drop for longer than its registry entry's `expected_every_days`).
Materialized by drop_freshness_schedule (MTSS_FRESHNESS_CRON, daily by default)."""
import datetime as dt
import time

import dagster as dg

from ..lib.alerts import is_overdue, overdue_districts
from ..lib.load.audit import last_drops
from ..lib.config import SettingError
from .alerting import send_once
from .metadata import OWNERS
from .resources import AlertResource, ErrorLogResource, RegistryResource

SENT = "mtss/alerts/sent/district_overdue"  # keys of the overdue alerts sent: one per district and last drop


@dg.asset(group_name="monitoring", kinds={"sql"}, owners=OWNERS,
          description="Each registry district's last-drop age in days (from dm.IngestionFiles); one alert per "
                      "district overdue by its registry entry's expected_every_days")
def drop_freshness(context: dg.AssetExecutionContext, registry: RegistryResource, error_log: ErrorLogResource,
                   alerting: AlertResource) -> dg.MaterializeResult:
    now, districts = time.time(), registry.registry()
    received = last_drops(error_log.engine())
    last = {d: received.get(d) for d in sorted(districts)}
    expected = {d: e.expected_every_days for d, e in districts.items() if e.expected_every_days}
    send_once(context.instance, SENT, alerting, context.log, overdue_districts(last, expected, now))

    rows = []
    for d, t in last.items():
        seen = "never" if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        age = "" if t is None else f"{(now - t) / 86_400:.1f}"
        late = "**overdue**" if is_overdue(t, expected.get(d), now) else ""
        rows.append(f"| {d} | {seen} | {age} | {expected.get(d) or ''} | {late} |")
    return dg.MaterializeResult(metadata={
        # one numeric entry per district: the asset's plots show each district's age over time
        **{f"last_drop_age_days/{d}": dg.MetadataValue.float(round((now - t) / 86_400, 4))
           for d, t in last.items() if t is not None},
        "overdue": ", ".join(d for d, t in last.items() if is_overdue(t, expected.get(d), now)) or "none",
        "never_received": ", ".join(d for d, t in last.items() if t is None) or "none",
        "districts": dg.MetadataValue.md("| district | last drop (UTC) | age (days) | expected every (days) | |\n"
                                         "|---|---|---|---|---|\n" + "\n".join(rows)),
    })


drop_freshness_job = dg.define_asset_job(
    "drop_freshness_job", selection=[drop_freshness],
    description="Each district's last-drop age, and alerts for overdue districts")


def make_drop_freshness_schedule(cron: str = "0 6 * * *") -> dg.ScheduleDefinition:
    try:
        return dg.ScheduleDefinition(name="drop_freshness_schedule", job=drop_freshness_job, cron_schedule=cron,
                                     default_status=dg.DefaultScheduleStatus.RUNNING,
                                     description="Each district's last-drop age; alerts for overdue districts")
    except dg.DagsterInvalidDefinitionError:
        raise SettingError(f"MTSS_FRESHNESS_CRON must be a cron expression of five fields (minute hour day month "
                           f"weekday, UTC), not {cron!r}") from None
