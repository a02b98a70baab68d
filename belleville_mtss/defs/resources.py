"""Resources, one job each: the district registry, the drop server (and the staging it receives into), the
warehouse, the prod db, the error log, and where alerts go. Values that may hold secrets (database URLs, the staging
key, the alert URLs) are passed as EnvVar when they come from the environment, so the UI shows the variable, never
the value. Engines are made once per run and disposed at its end."""
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import sqlalchemy as sa
from pydantic import PrivateAttr

from ..lib.load import migrations
from ..lib.alerts import Alert, AlertConfig, load_alert_config, send
from ..lib.config import SETTINGS, Settings
from ..lib.receive.drops import DropSource, Limits, LocalDropSource
from ..lib.load.errors import ErrorRecord, drop_ids, record_errors
from ..lib.district.registry import District, Registry, RegistryError, load_registry, registry_folders
from ..lib.receive.sftp import SftpConfig, SftpDropSource
from ..lib.read.theirs import ACCOUNT_INFO, CLASSLINK_USERS, configured, read_account_info, read_classlink_students
from ..lib.receive.untrusted import BadName, DropKey, escape, parse_drop_key, safe_join
from ..lib.receive.vault import staging_key
from ..lib.load.warehouse import make_engine, mark_files


def env_or_value(name: str, value: str):
    """A secret setting (lib/config.SETTINGS) as EnvVar(name) when its value came from that environment variable
    (the UI then shows the variable's name, never the value); the plain value otherwise (embedded defaults, tests)."""
    secret = SETTINGS[name].secret
    return dg.EnvVar(name) if secret and value and os.environ.get(name) == value else value


class RegistryResource(dg.ConfigurableResource):
    """The district registry (MTSS_DISTRICTS_DIR: one or several folders) and the FERPA review policy."""

    districts_dir: str  # folders joined with os.pathsep
    ferpa_review_max_days: int = 365
    max_days_ahead: int = 2  # a drop dated further past today is held (lib/load/order.py)
    _loaded: list = PrivateAttr(default_factory=list)

    def registry(self) -> Registry:
        if not self._loaded:  # once per run or tick; files unchanged since are not parsed again (registry.py)
            self._loaded.append(load_registry(registry_folders(self.districts_dir)))
        return self._loaded[0]


class DropServerResource(dg.ConfigurableResource):
    """Where drops arrive (an SFTP server, or a local folder when no host is set), where they are staged once
    received (encrypted with the staging key), and what one drop may cost (the limits)."""

    home: str
    drop_dir: str
    staging_dir: str
    sftp_host: str = ""
    sftp_port: int = 22
    sftp_user: str = ""
    sftp_key_path: str = ""
    sftp_known_hosts: str = ""
    sftp_root: str = "."
    staging_key: str = ""
    staging_retention_days: float = 30.0
    max_drop_bytes: int = Limits.max_drop_bytes
    max_zip_ratio: float = Limits.max_zip_ratio
    max_file_rows: int = Limits.max_file_rows

    def source(self) -> DropSource:
        if self.sftp_host:
            return SftpDropSource(SftpConfig(self.sftp_host, self.sftp_port, self.sftp_user, self.sftp_key_path,
                                             self.sftp_known_hosts, self.sftp_root))
        return LocalDropSource(Path(self.drop_dir))

    def server(self) -> str:
        """The drop server as an alert names it: its host, never user@host (an alert holds no '@')."""
        return self.sftp_host or "local drop folder"

    def staging(self, key: DropKey) -> Path:
        return safe_join(Path(self.staging_dir), key.district, key.drop)

    def vault_key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def limits(self) -> Limits:
        return Limits(self.max_drop_bytes, self.max_zip_ratio, self.max_file_rows)


class _Engine(dg.ConfigurableResource):
    """One engine per run, disposed at its end."""

    _engines: dict = PrivateAttr(default_factory=dict)

    def _engine(self, url: str, make) -> sa.Engine:
        if url not in self._engines:
            self._engines[url] = make()
        return self._engines[url]

    def teardown_after_execution(self, context) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


def _warehouse_engine(url: str, embedded: bool) -> sa.Engine:
    """The warehouse at the migrations' head: a run issues no DDL (the embedded SQLite default is ours and is
    migrated here); a warehouse behind the release is refused in one line naming the command to run."""
    try:
        return migrations.open_warehouse(url, embedded)
    except migrations.WarehouseNotReady as exc:
        raise dg.Failure(str(exc)) from None


class WarehouseResource(_Engine):
    """The EDU Data Warehouse: our tables, and the warehouse team's dm.AccountInfo, read only."""

    url: str
    embedded: bool = False  # the SQLite default under MTSS_HOME: ours entirely, migrated on first use
    account_info_table: str = ACCOUNT_INFO.label
    account_info_columns: str = ACCOUNT_INFO.column_setting
    load_lock_wait_seconds: float = 600.0
    staging_sweep_hours: float = 6.0

    def engine(self) -> sa.Engine:
        return self._engine(self.url, lambda: _warehouse_engine(self.url, self.embedded))

    def account_info(self) -> pl.DataFrame:
        return read_account_info(self.engine(), configured(ACCOUNT_INFO, self.account_info_table,
                                                           self.account_info_columns))


class ProdDbResource(_Engine):
    """The prod db: the product team's dbo.ClassLinkUsers, read only, the drop's tenant only."""

    url: str
    classlink_table: str = CLASSLINK_USERS.label
    classlink_columns: str = CLASSLINK_USERS.column_setting

    def classlink_students(self, district: District) -> pl.DataFrame:
        spec = configured(CLASSLINK_USERS, self.classlink_table, self.classlink_columns)
        return read_classlink_students(self._engine(self.url, lambda: make_engine(self.url)),
                                       district.source_names.classlink, district.classlink_tenant_ids, spec)


class ErrorLogResource(_Engine):
    """The error log (dm.IngestionErrors) and the audit of files (dm.IngestionFiles): what went wrong, and what
    became of each file. Messages never hold student data (lib/load/errors.py refuses one that looks like it)."""

    warehouse_url: str
    embedded: bool = False
    registry: dg.ResourceDependency[RegistryResource]
    _refused: set = PrivateAttr(default_factory=set)  # (run, reason) already recorded: once per run

    def engine(self) -> sa.Engine:
        return self._engine(self.warehouse_url, lambda: _warehouse_engine(self.warehouse_url, self.embedded))

    def record(self, context, drop_key: str, records: list[ErrorRecord], run_id: str | None = None) -> None:
        """Write error records to dm.IngestionErrors and the run log; `run_id`: the run they are of, where not this
        one (a dead run a later one settles)."""
        if not records:
            return
        district_id, drop_id = drop_ids(drop_key, self.registry.registry())
        run_id = run_id or getattr(getattr(context, "run", None), "run_id", None)  # a sensor's context has no run
        record_errors(self.engine(), records, district_id=district_id, drop_id=drop_id, run_id=run_id)
        for r in records:
            context.log.warning(f"[{r.stage}/{r.reason}] {r.message}")

    def mark_files(self, context, outcome: str, names: list[str] | None = None) -> None:
        """This run's files (all, or the named ones) in the dm.IngestionFiles audit: halted, blocked, failed, loaded."""
        mark_files(self.engine(), context.partition_key, context.run.run_id, outcome, names)

    def drop(self, context) -> "Drop":
        """The run's drop, resolved once per step: its canonical key and its registry entry. A key that is not
        canonical (a partition added by hand in the UI, another spelling of a drop) is refused `bad_drop_name`; a
        broken or missing entry `registry_entry` (it stops only its own district's drops). Either is recorded once
        per run, whichever step meets it first, and fails the step: nothing is built from it."""
        key = context.partition_key
        try:
            parsed = parse_drop_key(key)
            if str(parsed) != key:
                raise BadName(f"drop key {escape(key)} is not written as its canonical form '{parsed}'")
        except BadName as exc:
            self._refuse(context, key, ErrorRecord("receive", "bad_drop_name", str(exc)))
        registry = self.registry.registry()
        try:
            return Drop(parsed, registry.entry(parsed.district))
        except RegistryError as exc:
            problem = registry.problems.get(parsed.district)
            self._refuse(context, key, ErrorRecord("registry", "registry_entry", str(exc),
                                                   problem.file if problem else None))

    def _refuse(self, context, key: str, record: ErrorRecord):
        run_id = getattr(getattr(context, "run", None), "run_id", None)
        if (run_id, record.reason) not in self._refused:
            self._refused.add((run_id, record.reason))
            self.record(context, key, [record])
        raise dg.Failure(f"refused: {record.message}")


@dataclass(frozen=True)
class Drop:
    """One drop of a run: `name` is its canonical key (`<district>/<drop name>`), `district` its registry entry."""
    key: DropKey
    district: District

    @property
    def name(self) -> str:
        return str(self.key)


class AlertResource(dg.ConfigurableResource):
    """Where alerts go (lib/alerts.py): the MTSS_ALERT_* values; the destination URLs are secrets, passed as EnvVar
    when they come from the environment."""

    urls: str = ""
    webhook_url: str = ""
    smtp_url: str = ""
    to: str = ""
    outage_minutes: str = ""

    def config(self) -> AlertConfig:
        return load_alert_config({"MTSS_ALERT_URLS": self.urls, "MTSS_ALERT_WEBHOOK_URL": self.webhook_url,
                                  "MTSS_ALERT_SMTP_URL": self.smtp_url,
                                  "MTSS_ALERT_TO": self.to, "MTSS_ALERT_OUTAGE_MINUTES": self.outage_minutes})

    def send(self, log, alerts: list[Alert]) -> None:
        """Each alert on every channel; a channel that fails is logged, never raised (lib/alerts.send)."""
        config = self.config()
        for alert in alerts:
            deliveries = send(alert, config)
            said = "; ".join(d.describe() for d in deliveries) or "not sent: no channel configured"
            (log.info if all(d.ok for d in deliveries) else log.warning)(f"alert {alert.key}: {said}")


def resources(settings: Settings) -> dict:
    """The resources of the code location, from the settings (lib/config.py: environment and defaults)."""
    registry = RegistryResource(districts_dir=os.pathsep.join(map(str, settings.districts_dirs)),
                                ferpa_review_max_days=settings.ferpa_review_max_days,
                                max_days_ahead=settings.max_days_ahead)
    warehouse_url = env_or_value("MTSS_WAREHOUSE_URL", settings.warehouse_url)
    return {
        "registry": registry,
        "drop_server": DropServerResource(
            home=str(settings.home), drop_dir=str(settings.drop_dir), staging_dir=str(settings.staging_dir),
            sftp_host=settings.sftp_host or "", sftp_port=settings.sftp_port, sftp_user=settings.sftp_user,
            sftp_key_path=settings.sftp_key_path, sftp_known_hosts=settings.sftp_known_hosts,
            sftp_root=settings.sftp_root, staging_key=env_or_value("MTSS_STAGING_KEY", settings.staging_key),
            staging_retention_days=settings.staging_retention_days,
            max_drop_bytes=settings.limits.max_drop_bytes, max_zip_ratio=settings.limits.max_zip_ratio,
            max_file_rows=settings.limits.max_file_rows),
        "warehouse": WarehouseResource(
            url=warehouse_url, embedded=settings.embedded_warehouse,
            account_info_table=settings.account_info_table.label,
            account_info_columns=settings.account_info_table.column_setting,
            load_lock_wait_seconds=settings.load_lock_wait_seconds,
            staging_sweep_hours=settings.staging_sweep_hours),
        "prod_db": ProdDbResource(
            url=env_or_value("MTSS_PROD_DB_URL", settings.prod_db_url),
            classlink_table=settings.classlink_table.label, classlink_columns=settings.classlink_table.column_setting),
        "error_log": ErrorLogResource(warehouse_url=warehouse_url, embedded=settings.embedded_warehouse,
                                      registry=registry),
        "alerting": AlertResource(
            urls=env_or_value("MTSS_ALERT_URLS", settings.alert_env.get("MTSS_ALERT_URLS", "")),
            webhook_url=env_or_value("MTSS_ALERT_WEBHOOK_URL", settings.alert_env.get("MTSS_ALERT_WEBHOOK_URL", "")),
            smtp_url=env_or_value("MTSS_ALERT_SMTP_URL", settings.alert_env.get("MTSS_ALERT_SMTP_URL", "")),
            to=settings.alert_env.get("MTSS_ALERT_TO", ""),
            outage_minutes=settings.alert_env.get("MTSS_ALERT_OUTAGE_MINUTES", "")),
    }
