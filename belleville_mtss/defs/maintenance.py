"""Housekeeping: staged copies of received drops are deleted after the retention period."""
import time
from pathlib import Path

import dagster as dg

from ..lib.drops import purge_staging
from .resources import MtssResource


@dg.op(description="Delete staged drops older than MTSS_STAGING_RETENTION_DAYS")
def purge_expired_staging(context: dg.OpExecutionContext, mtss: MtssResource) -> None:
    removed = purge_staging(Path(mtss.staging_dir), mtss.staging_retention_days, time.time())
    context.log.info(f"removed {len(removed)} staged drop(s) older than {mtss.staging_retention_days} days: "
                     f"{', '.join(removed) or 'none'}")


@dg.job(description="Delete staged copies of received drops past their retention period")
def staging_retention_job():
    purge_expired_staging()


staging_retention_schedule = dg.ScheduleDefinition(
    job=staging_retention_job, cron_schedule="15 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
)
