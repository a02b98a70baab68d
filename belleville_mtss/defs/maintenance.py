"""Housekeeping: staged copies of received drops, their stored frames, and what a killed run left behind are
deleted after the retention period (orphans at once)."""
import time
from pathlib import Path

import dagster as dg

from ..lib.config import STORAGE
from ..lib.receive.drops import purge_staging, purge_storage
from .resources import DropServerResource


@dg.op(description="Delete staged drops older than MTSS_STAGING_RETENTION_DAYS, their stored frames, and orphans")
def purge_expired_staging(context: dg.OpExecutionContext, drop_server: DropServerResource) -> None:
    now, days = time.time(), drop_server.staging_retention_days
    expired, orphans = purge_staging(Path(drop_server.staging_dir), days, now)
    frames = purge_storage(Path(drop_server.home) / STORAGE, expired + orphans, days, now)
    context.log.info(f"removed {len(expired)} staged drop(s) older than {days} days ({', '.join(expired) or 'none'}), "
                     f"{len(orphans)} incomplete one(s) ({', '.join(orphans) or 'none'}) and {frames} stored frame(s)")


@dg.job(description="Delete staged copies of received drops past their retention period")
def staging_retention_job():
    purge_expired_staging()


staging_retention_schedule = dg.ScheduleDefinition(
    job=staging_retention_job, cron_schedule="15 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
)
