"""The code location's Definitions, built when Dagster loads them (not at import): the settings are read then,
from the environment and the embedded defaults (lib/config.py)."""
import dagster as dg

from .defs.alerting import make_drop_alert_sensor, make_job_failure_alert_sensor
from .defs.freshness import drop_freshness, drop_freshness_job, make_drop_freshness_schedule
from .defs.io import EncryptedFrameIOManager
from .defs.assets import ASSETS
from .defs.jobs import drop_job
from .defs.maintenance import staging_retention_job, staging_retention_schedule
from .defs.outcomes import make_drop_outcome_sensor
from .defs.resources import env_or_value, resources
from .defs.sensors import make_sftp_drop_sensor
from .lib.config import Settings, load_settings
from .progress import progress_logger


def build_definitions(settings: Settings) -> dg.Definitions:
    every = settings.sensor_interval_seconds
    return dg.Definitions(
        assets=[*ASSETS, drop_freshness],
        jobs=[drop_job, staging_retention_job, drop_freshness_job],
        sensors=[make_sftp_drop_sensor(every), make_drop_outcome_sensor(every), make_drop_alert_sensor(every),
                 make_job_failure_alert_sensor([staging_retention_job, drop_freshness_job], every)],
        schedules=[staging_retention_schedule, make_drop_freshness_schedule(settings.freshness_cron)],
        resources={
            **resources(settings),
            "io_manager": EncryptedFrameIOManager(
                base_dir=str(settings.storage_dir), home=str(settings.home),
                staging_key=env_or_value("MTSS_STAGING_KEY", settings.staging_key)),
        },
        executor=dg.in_process_executor,
        loggers={"console": dg.colored_console_logger, "progress": progress_logger},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
