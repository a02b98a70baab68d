"""The one resource the assets and the sensor share: where drops, the registry and the databases are."""
import os
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from pydantic import PrivateAttr

from ..lib import migrations
from ..lib.config import Settings
from ..lib.drops import DropSource, Limits, LocalDropSource
from ..lib.errors import ErrorRecord, drop_ids, record_errors
from ..lib.registry import District, Registry, RegistryError, load_registry, registry_folders
from ..lib.sftp import SftpConfig, SftpDropSource
from ..lib.theirs import ACCOUNT_INFO, CLASSLINK_USERS, configured, read_account_info, \
    read_classlink_students
from ..lib.untrusted import BadName, DropKey, escape, parse_drop_key, safe_join
from ..lib.vault import staging_key
from ..lib.warehouse import make_engine, mark_files


def env_or_value(name: str, value: str):
    """EnvVar(name) when the value came from that environment variable (the UI then shows the variable's
    name, not a secret); the plain value otherwise (embedded defaults, tests)."""
    return dg.EnvVar(name) if value and os.environ.get(name) == value else value


class MtssResource(dg.ConfigurableResource):
    """Built from the environment (see the README's configuration table). Values that may hold secrets
    (database URLs, the staging key) are passed as EnvVar when set, so the UI shows the variable, not the value."""

    home: str
    warehouse_url: str
    prod_db_url: str
    drop_dir: str
    districts_dir: str
    staging_dir: str
    storage_dir: str
    sftp_host: str = ""
    sftp_port: int = 22
    sftp_user: str = ""
    sftp_key_path: str = ""
    sftp_known_hosts: str = ""
    sftp_root: str = "."
    staging_key: str = ""
    staging_retention_days: float = 30.0
    ferpa_review_max_days: int = 365
    max_drop_bytes: int = Limits.max_drop_bytes
    max_zip_ratio: float = Limits.max_zip_ratio
    max_file_rows: int = Limits.max_file_rows
    embedded_warehouse: bool = False  # the SQLite default under MTSS_HOME: ours, migrated on first use
    account_info_table: str = ACCOUNT_INFO.label
    account_info_columns: str = ACCOUNT_INFO.column_setting
    classlink_table: str = CLASSLINK_USERS.label
    classlink_columns: str = CLASSLINK_USERS.column_setting
    _engines: dict = PrivateAttr(default_factory=dict)  # url -> engine, made once per run

    @classmethod
    def from_settings(cls, settings: Settings) -> "MtssResource":
        return cls(
            home=str(settings.home),
            warehouse_url=env_or_value("MTSS_WAREHOUSE_URL", settings.warehouse_url),
            prod_db_url=env_or_value("MTSS_PROD_DB_URL", settings.prod_db_url),
            staging_key=env_or_value("MTSS_STAGING_KEY", settings.staging_key),
            staging_retention_days=settings.staging_retention_days,
            ferpa_review_max_days=settings.ferpa_review_max_days,
            drop_dir=str(settings.drop_dir), districts_dir=os.pathsep.join(map(str, settings.districts_dirs)),
            staging_dir=str(settings.staging_dir), storage_dir=str(settings.storage_dir), sftp_host=settings.sftp_host or "",
            sftp_port=settings.sftp_port, sftp_user=settings.sftp_user, sftp_key_path=settings.sftp_key_path,
            sftp_known_hosts=settings.sftp_known_hosts, sftp_root=settings.sftp_root,
            max_drop_bytes=settings.limits.max_drop_bytes, max_zip_ratio=settings.limits.max_zip_ratio,
            max_file_rows=settings.limits.max_file_rows, embedded_warehouse=settings.embedded_warehouse,
            account_info_table=settings.account_info_table.label,
            account_info_columns=settings.account_info_table.column_setting,
            classlink_table=settings.classlink_table.label, classlink_columns=settings.classlink_table.column_setting,
        )

    def registry(self) -> Registry:
        return load_registry(registry_folders(self.districts_dir))

    def district_entry(self, district: str, context=None) -> District:
        """The district's registry entry. A broken or missing entry fails the step; with `context` (the drop's first
        step) its problem is recorded: a malformed entry stops only its own district's drops."""
        registry = self.registry()
        try:
            return registry.entry(district)
        except RegistryError as exc:
            if context is not None:
                problem = registry.problems.get(district)
                self.record(context, context.partition_key, [ErrorRecord(
                    "registry", "registry_entry", str(exc), problem.file if problem else None)])
            raise dg.Failure(f"refused: {exc}") from None

    def drop_key(self, context, key: str, record: bool = False) -> DropKey:
        """The canonical key of a partition. A key that is not one (a partition added by hand in the UI) fails the
        step, recorded as `bad_drop_name` where `record` (once per run, by the first asset): nothing is built
        from it. Another spelling of a canonical key is refused too: one drop, one partition, one DropId."""
        try:
            parsed = parse_drop_key(key)
            if str(parsed) != key:
                raise BadName(f"drop key {escape(key)} is not written as its canonical form '{parsed}'")
        except BadName as exc:
            if record:
                self.record(context, key, [ErrorRecord("receive", "bad_drop_name", str(exc))])
            raise dg.Failure(f"refused: {exc}") from None
        return parsed

    def for_drop(self, drop_key: str) -> District:
        try:
            return self.district_entry(parse_drop_key(drop_key).district)
        except BadName as exc:
            raise dg.Failure(f"refused: {exc}") from None

    def limits(self) -> Limits:
        return Limits(self.max_drop_bytes, self.max_zip_ratio, self.max_file_rows)

    def drop_source(self) -> DropSource:
        if self.sftp_host:
            return SftpDropSource(SftpConfig(self.sftp_host, self.sftp_port, self.sftp_user, self.sftp_key_path,
                                             self.sftp_known_hosts, self.sftp_root))
        return LocalDropSource(Path(self.drop_dir))

    def staging(self, key: DropKey) -> Path:
        return safe_join(Path(self.staging_dir), key.district, key.drop)

    def vault_key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def warehouse(self) -> sa.Engine:
        """The warehouse engine of this run, checked once to be at the migrations' head (a run issues no DDL; the
        embedded SQLite default is ours and is migrated here)."""
        if self.warehouse_url not in self._engines:
            try:
                self._engines[self.warehouse_url] = migrations.open_warehouse(self.warehouse_url,
                                                                              self.embedded_warehouse)
            except migrations.WarehouseNotReady as exc:
                raise dg.Failure(str(exc)) from None
        return self._engines[self.warehouse_url]

    def prod_db(self) -> sa.Engine:
        if self.prod_db_url not in self._engines:
            self._engines[self.prod_db_url] = make_engine(self.prod_db_url)
        return self._engines[self.prod_db_url]

    def teardown_after_execution(self, context) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def account_info(self):
        return read_account_info(self.warehouse(), configured(ACCOUNT_INFO, self.account_info_table,
                                                              self.account_info_columns))

    def classlink_students(self, district: District):
        spec = configured(CLASSLINK_USERS, self.classlink_table, self.classlink_columns)
        return read_classlink_students(self.prod_db(), district.source_names.classlink,
                                       district.classlink_tenant_ids, spec)

    def record(self, context, drop_key: str, records: list[ErrorRecord]) -> None:
        """Write error records to dm.IngestionErrors and the run log (the messages carry no student data)."""
        if not records:
            return
        district_id, drop_id = drop_ids(drop_key, self.registry())
        run_id = getattr(getattr(context, "run", None), "run_id", None)  # a sensor's context has no run
        record_errors(self.warehouse(), records, district_id=district_id, drop_id=drop_id, run_id=run_id)
        for r in records:
            context.log.warning(f"[{r.stage}/{r.reason}] {r.message}")

    def mark_files(self, context, outcome: str, names: list[str] | None = None) -> None:
        """This run's files (all, or the named ones) in the dm.IngestionFiles audit: halted, blocked, loaded."""
        mark_files(self.warehouse(), context.partition_key, context.run.run_id, outcome, names)
