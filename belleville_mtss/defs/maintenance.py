"""Housekeeping: staged copies of received drops, their stored frames, and what a killed run left behind are
deleted after the retention period (orphans at once); so are the drop partitions that only list old history."""
import time
from pathlib import Path

import dagster as dg

from ..lib.config import STORAGE
from ..lib.receive.drops import expired_partitions, purge_staging, purge_storage, staged_drops
from .partitions import drops as drop_partitions
from .resources import DropServerResource


@dg.op(out=dg.Out(dg.Nothing),
       description="Delete staged drops older than MTSS_STAGING_RETENTION_DAYS, their stored frames, and orphans")
def purge_expired_staging(context: dg.OpExecutionContext, drop_server: DropServerResource) -> None:
    now, days = time.time(), drop_server.staging_retention_days
    expired, orphans = purge_staging(Path(drop_server.staging_dir), days, now)
    frames = purge_storage(Path(drop_server.home) / STORAGE, expired + orphans, days, now)
    context.log.info(f"removed {len(expired)} staged drop(s) older than {days} days ({', '.join(expired) or 'none'}), "
                     f"{len(orphans)} incomplete one(s) ({', '.join(orphans) or 'none'}) and {frames} stored frame(s)")


@dg.op(ins={"after": dg.In(dg.Nothing)},
       description="Remove drop partitions past MTSS_STAGING_RETENTION_DAYS (not each district's newest)")
def prune_drop_partitions(context: dg.OpExecutionContext, drop_server: DropServerResource) -> None:
    # Thousands of old partitions slow every partition picker and listing in the UI; their runs and events stay.
    instance, now, days = context.instance, time.time(), drop_server.staging_retention_days
    last_run = {}
    for key in instance.get_dynamic_partitions(drop_partitions.name):
        # Dagster's own partition tag: every run of the drop has it (the sensor's, the UI's, the command line's)
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
        last_run[key] = records[0].update_timestamp.timestamp() if records else None
    gone = expired_partitions(last_run, staged_drops(Path(drop_server.staging_dir)), days, now)
    for key in gone:
        instance.delete_dynamic_partition(drop_partitions.name, key)
    context.log.info(f"removed {len(gone)} of {len(last_run)} drop partition(s), last run more than {days} days ago")


@dg.job(description="Delete staged copies of received drops past their retention period")
def staging_retention_job():
    prune_drop_partitions(after=purge_expired_staging())


staging_retention_schedule = dg.ScheduleDefinition(
    job=staging_retention_job, cron_schedule="15 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
)
