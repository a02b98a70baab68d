"""The configuration contract: every setting has an embedded default, overridden by environment variable."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .alerts import load_alert_config
from .faults import POINTS
from .receive.drops import Limits
from .district.registry import registry_folders
from .read.theirs import ACCOUNT_INFO, CLASSLINK_USERS, SourceTable, configured

STORAGE = "storage"  # under MTSS_HOME: the IO manager's encrypted frames


@dataclass(frozen=True)
class Setting:
    """One environment variable: its embedded default (as people read it) and what it means."""
    variable: str
    default: str
    meaning: str
    secret: bool = False  # its value is passed to Dagster as EnvVar, so the UI shows the name, never the value


SETTINGS: dict[str, Setting] = {s.variable: s for s in (
    Setting("MTSS_HOME", "`./.mtss`", "working folder"),
    Setting("MTSS_WAREHOUSE_URL", "SQLite file under `MTSS_HOME`",
            "SQLAlchemy URL of the EDU Data Warehouse (`dm` schema)", secret=True),
    Setting("MTSS_PROD_DB_URL", "SQLite file under `MTSS_HOME`", "SQLAlchemy URL of the prod db (`dbo` schema)",
            secret=True),
    Setting("MTSS_DROP_DIR", "`MTSS_HOME/drops`", "local folder of district drops, used when no SFTP host is set"),
    Setting("MTSS_DISTRICTS_DIR", "the packaged `belleville_mtss/districts/`",
            "the district registry: one or several folders (separated by `:`); the word `packaged` stands for the "
            "packaged one"),
    Setting("MTSS_SFTP_HOST", "unset: the local `MTSS_DROP_DIR`", "the SFTP drop server"),
    Setting("MTSS_SFTP_PORT", "`22`", "its port"),
    Setting("MTSS_SFTP_USER", "unset", "the account on the drop server (key authentication only)"),
    Setting("MTSS_SFTP_KEY_PATH", "unset", "that account's private key file"),
    Setting("MTSS_SFTP_KNOWN_HOSTS", "unset",
            "known-hosts file holding the server's host key (unknown or changed keys are refused)"),
    Setting("MTSS_SFTP_ROOT", "`.`", "the folder on the server that holds the district drop folders"),
    Setting("MTSS_STAGING_KEY", "embedded demo only: a key file under `MTSS_HOME`",
            "64 hex characters: the AES-256 key of staged copies at rest", secret=True),
    Setting("MTSS_STAGING_RETENTION_DAYS", "`30`", "staged drops older than this are deleted (daily schedule)"),
    Setting("MTSS_FERPA_REVIEW_MAX_DAYS", "`365`", "a district's FERPA review older than this blocks its drops"),
    Setting("MTSS_MAX_DROP_BYTES", "`8589934592` (8 GiB)", "a drop (or a zip, once expanded) larger than this is "
            "refused"),
    Setting("MTSS_MAX_ZIP_RATIO", "`200`", "a zip entry expanding more than this many times is refused"),
    Setting("MTSS_MAX_FILE_ROWS", "`20000000`", "a file with more rows than this is halted before it is parsed"),
    Setting("MTSS_LOAD_LOCK_WAIT_SECONDS", "`600`", "a district's load waits this long for another load of the "
            "same district to end (the warehouse's district lock), then stops without writing"),
    Setting("MTSS_MAX_DAYS_AHEAD", "`2`", "a drop whose name dates it more than this many days after today is held "
            "(blocked, with an alert), never loaded, and never orders a later drop out (a mistyped year)"),
    Setting("MTSS_FAULT", "unset", "tests only: `<point>:<action>` trips a named fault point (lib/faults.py: kill, "
            "raise, sleep=<seconds> or wait=<path>); never set it in production"),
    Setting("MTSS_STAGING_SWEEP_HOURS", "`6`", "staged warehouse rows of a load that started longer ago than this "
            "are deleted by the next load (what a killed load left in the staging tables)"),
    Setting("MTSS_ACCOUNT_INFO_TABLE", "`dm.AccountInfo`",
            "where the warehouse team keeps districts (`schema.table`), found in its own case"),
    Setting("MTSS_ACCOUNT_INFO_COLUMNS", "the mapping spec's names",
            "its columns, where they are named otherwise (`Ours=Theirs,...`)"),
    Setting("MTSS_CLASSLINK_TABLE", "`dbo.ClassLinkUsers`",
            "where the product team keeps ClassLink users (`schema.table`), found in its own case"),
    Setting("MTSS_CLASSLINK_COLUMNS", "the mapping spec's names",
            "its columns, where they are named otherwise (`Ours=Theirs,...`)"),
    Setting("MTSS_ALERT_URLS", "unset: none", "where alerts go: one [Apprise URL](https://appriseit.com/services/) "
            "per destination, separated by spaces or new lines (`workflows://` for Microsoft Teams, `slack://`, "
            "`mailto://`, `json://`, `pagerduty://`, ...)", secret=True),
    Setting("MTSS_ALERT_WEBHOOK_URL", "unset: no webhook", "a Slack-compatible incoming webhook for alerts (one "
            "`{\"text\": ...}` post); still read, `MTSS_ALERT_URLS` is its successor", secret=True),
    Setting("MTSS_ALERT_SMTP_URL", "unset: no email", "`smtp://`, `smtp+starttls://` or "
            "`smtps://[user:password@]host[:port][?from=address]`, user and password percent-encoded", secret=True),
    Setting("MTSS_ALERT_TO", "unset", "comma-separated alert recipients (required with `MTSS_ALERT_SMTP_URL`)"),
    Setting("MTSS_ALERT_OUTAGE_MINUTES", "`30`", "the drop server unreachable this long sends one alert, and the "
            "drop sensor's ticks fail until it answers (minutes, decimals allowed)"),
    Setting("MTSS_SENSOR_INTERVAL_SECONDS", "`30`", "the least time between two ticks of each sensor (drops, "
            "outcomes, alerts); the daemon checks its sensors every 5 s, so less makes no difference"),
    Setting("MTSS_FRESHNESS_CRON", "`0 6 * * *` (06:00 daily)", "when `drop_freshness_schedule` measures each "
            "district's last-drop age and alerts on overdue districts (cron, UTC)"),
)}


def markdown_table() -> str:
    """The README's configuration table, from the declarations (a test keeps the two equal)."""
    rows = [f"| `{s.variable}` | {s.meaning}{' (a secret: never logged)' if s.secret else ''} | {s.default} |"
            for s in SETTINGS.values()]
    return "\n".join(["| variable | meaning | embedded default |", "|---|---|---|", *rows])


def setting_value(env: dict[str, str], name: str) -> str:
    """A declared setting's value as given ("" when unset); an undeclared name is a programming error."""
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a declared setting (lib/config.SETTINGS)")
    return env.get(name) or ""


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
    max_days_ahead: int = 2
    limits: Limits = Limits()
    account_info_table: SourceTable = ACCOUNT_INFO
    classlink_table: SourceTable = CLASSLINK_USERS
    # The MTSS_ALERT_* values as given, checked (lib/alerts.py reads them; the resource passes secrets as EnvVar).
    alert_env: dict[str, str] = field(default_factory=dict, repr=False)
    sensor_interval_seconds: int = 30
    load_lock_wait_seconds: float = 600.0
    staging_sweep_hours: float = 6.0
    fault: str = ""  # MTSS_FAULT: tests only (lib/faults.py reads it where the point is)
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
    home = Path(setting_value(env, "MTSS_HOME") or "./.mtss").resolve()
    return Settings(
        home=home,
        warehouse_url=setting_value(env, "MTSS_WAREHOUSE_URL") or _sqlite_url(home / "warehouse.db"),
        prod_db_url=setting_value(env, "MTSS_PROD_DB_URL") or _sqlite_url(home / "prod.db"),
        drop_dir=Path(setting_value(env, "MTSS_DROP_DIR") or home / "drops").resolve(),
        districts_dirs=registry_folders(setting_value(env, "MTSS_DISTRICTS_DIR")),
        sftp_host=setting_value(env, "MTSS_SFTP_HOST") or None,
        sftp_port=_number(env, "MTSS_SFTP_PORT", 22, int),
        sftp_user=setting_value(env, "MTSS_SFTP_USER") or "",
        sftp_key_path=setting_value(env, "MTSS_SFTP_KEY_PATH") or "",
        sftp_known_hosts=setting_value(env, "MTSS_SFTP_KNOWN_HOSTS") or "",
        sftp_root=setting_value(env, "MTSS_SFTP_ROOT") or ".",
        staging_key=setting_value(env, "MTSS_STAGING_KEY") or "",
        staging_retention_days=_number(env, "MTSS_STAGING_RETENTION_DAYS", 30.0, float),
        ferpa_review_max_days=_number(env, "MTSS_FERPA_REVIEW_MAX_DAYS", 365, int),
        max_days_ahead=_number(env, "MTSS_MAX_DAYS_AHEAD", Settings.max_days_ahead, int),
        limits=Limits(max_drop_bytes=_number(env, "MTSS_MAX_DROP_BYTES", Limits.max_drop_bytes, int),
                      max_zip_ratio=_number(env, "MTSS_MAX_ZIP_RATIO", Limits.max_zip_ratio, float),
                      max_file_rows=_number(env, "MTSS_MAX_FILE_ROWS", Limits.max_file_rows, int)),
        account_info_table=configured(ACCOUNT_INFO, setting_value(env, "MTSS_ACCOUNT_INFO_TABLE"),
                                      setting_value(env, "MTSS_ACCOUNT_INFO_COLUMNS")),
        classlink_table=configured(CLASSLINK_USERS, setting_value(env, "MTSS_CLASSLINK_TABLE"), setting_value(env, "MTSS_CLASSLINK_COLUMNS")),
        alert_env=_alert_env(env),
        fault=_fault(env),
        sensor_interval_seconds=_number(env, "MTSS_SENSOR_INTERVAL_SECONDS", 30, int),
        load_lock_wait_seconds=_number(env, "MTSS_LOAD_LOCK_WAIT_SECONDS", 600.0, float),
        staging_sweep_hours=_number(env, "MTSS_STAGING_SWEEP_HOURS", Settings.staging_sweep_hours, float),
        freshness_cron=" ".join((setting_value(env, "MTSS_FRESHNESS_CRON") or "0 6 * * *").split()),  # checked by Dagster
    )


ALERT_VARIABLES = tuple(name for name in SETTINGS if name.startswith("MTSS_ALERT_"))


def _fault(env: dict[str, str]) -> str:
    """MTSS_FAULT, refused unless it names a fault point and an action (a mistyped one would trip nothing)."""
    value = setting_value(env, "MTSS_FAULT")
    point, _, action = value.partition(":")
    if value and (point not in POINTS or not (action in ("kill", "raise") or action.startswith(("sleep=", "wait=")))):
        raise SettingError(f"MTSS_FAULT must be <point>:<kill|raise|sleep=SECONDS|wait=PATH> with a point of "
                           f"{', '.join(POINTS)}, not {value!r}")
    return value


def _alert_env(env: dict[str, str]) -> dict[str, str]:
    values = {k: setting_value(env, k) for k in ALERT_VARIABLES if setting_value(env, k)}
    load_alert_config(values)  # a malformed value stops the load now, naming the variable (AlertConfigError)
    return values


class SettingError(ValueError):
    """An environment variable whose value cannot be used; the message names the variable."""


def _number(env: dict[str, str], name: str, default, kind):
    text = setting_value(env, name)
    if not text:
        return default
    try:
        value = kind(text.replace("_", ""))
    except ValueError:
        raise SettingError(f"{name} must be a {'whole ' if kind is int else ''}number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise SettingError(f"{name} must be greater than 0, not {text!r}")
    return value
