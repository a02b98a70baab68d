"""The one resource the assets and the sensor share: where drops, the registry and the databases are."""
import os
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from ..lib.config import Settings
from ..lib.drops import DropSource, LocalDropSource
from ..lib.errors import ErrorRecord, record_errors
from ..lib.registry import District, load_registry
from ..lib.sftp import SftpConfig, SftpDropSource
from ..lib.vault import staging_key
from ..lib.warehouse import WAREHOUSE_TABLES, create_tables, make_engine, mark_files
from .partitions import split_drop_key


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
    sftp_host: str = ""
    sftp_port: int = 22
    sftp_user: str = ""
    sftp_key_path: str = ""
    sftp_known_hosts: str = ""
    sftp_root: str = "."
    staging_key: str = ""
    staging_retention_days: float = 30.0
    ferpa_review_max_days: int = 365

    @classmethod
    def from_settings(cls, settings: Settings) -> "MtssResource":
        return cls(
            home=str(settings.home),
            warehouse_url=env_or_value("MTSS_WAREHOUSE_URL", settings.warehouse_url),
            prod_db_url=env_or_value("MTSS_PROD_DB_URL", settings.prod_db_url),
            staging_key=env_or_value("MTSS_STAGING_KEY", settings.staging_key),
            staging_retention_days=settings.staging_retention_days,
            ferpa_review_max_days=settings.ferpa_review_max_days,
            drop_dir=str(settings.drop_dir), districts_dir=str(settings.districts_dir),
            staging_dir=str(settings.staging_dir), sftp_host=settings.sftp_host or "",
            sftp_port=settings.sftp_port, sftp_user=settings.sftp_user, sftp_key_path=settings.sftp_key_path,
            sftp_known_hosts=settings.sftp_known_hosts, sftp_root=settings.sftp_root,
        )

    def registry(self) -> dict[str, District]:
        return load_registry(Path(self.districts_dir))

    def district_entry(self, district: str) -> District:
        registry = self.registry()
        if district not in registry:
            raise dg.Failure(f"district '{district}' is not in the registry ({', '.join(sorted(registry))})")
        return registry[district]

    def for_drop(self, drop_key: str) -> District:
        return self.district_entry(split_drop_key(drop_key)[0])

    def drop_source(self) -> DropSource:
        if self.sftp_host:
            return SftpDropSource(SftpConfig(self.sftp_host, self.sftp_port, self.sftp_user, self.sftp_key_path,
                                             self.sftp_known_hosts, self.sftp_root))
        return LocalDropSource(Path(self.drop_dir))

    def staging(self, drop_key: str) -> Path:
        return Path(self.staging_dir) / drop_key

    def vault_key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def warehouse(self) -> sa.Engine:
        engine = make_engine(self.warehouse_url)
        create_tables(engine, WAREHOUSE_TABLES)
        return engine

    def prod_db(self) -> sa.Engine:
        return make_engine(self.prod_db_url)

    def record(self, context, drop_key: str, records: list[ErrorRecord]) -> None:
        """Write error records to dm.IngestionErrors and the run log (the messages carry no student data)."""
        if not records:
            return
        district = split_drop_key(drop_key)[0]
        registry = self.registry()
        district_id = registry[district].account_info_id if district in registry else None
        engine = self.warehouse()
        try:
            record_errors(engine, records, district_id=district_id, drop_id=drop_key, run_id=context.run.run_id)
        finally:
            engine.dispose()
        for r in records:
            context.log.warning(f"[{r.stage}/{r.reason}] {r.message}")

    def mark_files(self, drop_key: str, names: list[str], outcome: str) -> None:
        """The outcome of received files in the dm.IngestionFiles manifest (halted, loaded)."""
        engine = self.warehouse()
        try:
            mark_files(engine, drop_key, names, outcome)
        finally:
            engine.dispose()
