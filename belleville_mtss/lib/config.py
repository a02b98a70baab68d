"""The configuration contract: every setting has an embedded default, overridden by environment variable."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .alerts import load_alert_config
from .drops import Limits
from .registry import registry_folders
from .theirs import ACCOUNT_INFO, CLASSLINK_USERS, SourceTable, configured

STORAGE = "storage"  # under MTSS_HOME: the IO manager's encrypted frames
PACKAGED_DISTRICTS_DIR = Path(__file__).resolve().parent.parent / "districts"


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse_url: str
    prod_db_url: str
    drop_dir: Path
    districts_dirs: tuple[Path, ...]
    sftp_host: str | None
    sftp_port: int = 22
    sftp_user: str = ""
    sftp_key_path: str = ""
    sftp_known_hosts: str = ""
    sftp_root: str = "."
    staging_key: str = ""
    staging_retention_days: float = 30.0
    ferpa_review_max_days: int = 365
    limits: Limits = Limits()
    account_info_table: SourceTable = ACCOUNT_INFO
    classlink_table: SourceTable = CLASSLINK_USERS
    # The MTSS_ALERT_* values as given, checked (lib/alerts.py reads them; the resource passes secrets as EnvVar).
    alert_env: dict[str, str] = field(default_factory=dict, repr=False)
    sensor_interval_seconds: int = 30
    freshness_cron: str = "0 6 * * *"

    @property
    def embedded_warehouse(self) -> bool:
        """The embedded default SQLite warehouse under MTSS_HOME: ours entirely (the demo may create tables)."""
        return self.warehouse_url == _sqlite_url(self.home / "warehouse.db")

    @property
    def embedded_prod_db(self) -> bool:
        return self.prod_db_url == _sqlite_url(self.home / "prod.db")

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def storage_dir(self) -> Path:
        return self.home / STORAGE


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("MTSS_HOME") or "./.mtss").resolve()
    return Settings(
        home=home,
        warehouse_url=env.get("MTSS_WAREHOUSE_URL") or _sqlite_url(home / "warehouse.db"),
        prod_db_url=env.get("MTSS_PROD_DB_URL") or _sqlite_url(home / "prod.db"),
        drop_dir=Path(env.get("MTSS_DROP_DIR") or home / "drops").resolve(),
        districts_dirs=registry_folders(env.get("MTSS_DISTRICTS_DIR")),
        sftp_host=env.get("MTSS_SFTP_HOST") or None,
        sftp_port=_number(env, "MTSS_SFTP_PORT", 22, int),
        sftp_user=env.get("MTSS_SFTP_USER") or "",
        sftp_key_path=env.get("MTSS_SFTP_KEY_PATH") or "",
        sftp_known_hosts=env.get("MTSS_SFTP_KNOWN_HOSTS") or "",
        sftp_root=env.get("MTSS_SFTP_ROOT") or ".",
        staging_key=env.get("MTSS_STAGING_KEY") or "",
        staging_retention_days=_number(env, "MTSS_STAGING_RETENTION_DAYS", 30.0, float),
        ferpa_review_max_days=_number(env, "MTSS_FERPA_REVIEW_MAX_DAYS", 365, int),
        limits=Limits(max_drop_bytes=_number(env, "MTSS_MAX_DROP_BYTES", Limits.max_drop_bytes, int),
                      max_zip_ratio=_number(env, "MTSS_MAX_ZIP_RATIO", Limits.max_zip_ratio, float),
                      max_file_rows=_number(env, "MTSS_MAX_FILE_ROWS", Limits.max_file_rows, int)),
        account_info_table=configured(ACCOUNT_INFO, env.get("MTSS_ACCOUNT_INFO_TABLE"),
                                      env.get("MTSS_ACCOUNT_INFO_COLUMNS")),
        classlink_table=configured(CLASSLINK_USERS, env.get("MTSS_CLASSLINK_TABLE"), env.get("MTSS_CLASSLINK_COLUMNS")),
        alert_env=_alert_env(env),
        sensor_interval_seconds=_number(env, "MTSS_SENSOR_INTERVAL_SECONDS", 30, int),
        freshness_cron=" ".join((env.get("MTSS_FRESHNESS_CRON") or "0 6 * * *").split()),  # checked by Dagster
    )


ALERT_VARIABLES = ("MTSS_ALERT_WEBHOOK_URL", "MTSS_ALERT_SMTP_URL", "MTSS_ALERT_TO", "MTSS_ALERT_OUTAGE_MINUTES")


def _alert_env(env: dict[str, str]) -> dict[str, str]:
    values = {k: env[k] for k in ALERT_VARIABLES if env.get(k)}
    load_alert_config(values)  # a malformed value stops the load now, naming the variable (AlertConfigError)
    return values


class SettingError(ValueError):
    """An environment variable whose value cannot be used; the message names the variable."""


def _number(env: dict[str, str], name: str, default, kind):
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text.replace("_", ""))
    except ValueError:
        raise SettingError(f"{name} must be a {'whole ' if kind is int else ''}number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise SettingError(f"{name} must be greater than 0, not {text!r}")
    return value
