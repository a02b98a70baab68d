"""The one resource the assets share: where the drop, the registry and the databases are."""

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from ..lib.config import Settings
from ..lib.drops import find_file, list_drops
from ..lib.errors import ErrorRecord, record_errors
from ..lib.registry import District, load_registry
from ..lib.warehouse import WAREHOUSE_TABLES, create_tables, make_engine


class MtssResource(dg.ConfigurableResource):
    """`district` picks the registry entry; `drop` names the drop folder (empty: the latest complete drop)."""

    warehouse_url: str
    prod_db_url: str
    drop_dir: str
    districts_dir: str
    district: str = "belleville"
    drop: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "MtssResource":
        return cls(
            warehouse_url=settings.warehouse_url, prod_db_url=settings.prod_db_url,
            drop_dir=str(settings.drop_dir), districts_dir=str(settings.districts_dir), **overrides,
        )

    def district_entry(self) -> District:
        registry = load_registry(Path(self.districts_dir))
        if self.district not in registry:
            raise dg.Failure(f"district '{self.district}' is not in the registry ({', '.join(sorted(registry))})")
        return registry[self.district]

    def drop_path(self) -> Path:
        base = Path(self.drop_dir) / self.district_entry().drop_folder
        if self.drop:
            path = base / self.drop
            if not path.is_dir():
                raise dg.Failure(f"drop '{self.drop}' not found under {base}")
            return path
        drops = list_drops(base)
        if not drops:
            raise dg.Failure(f"no complete drop (with its drop.done marker) under {base}")
        return drops[-1]

    @property
    def drop_id(self) -> str:
        return f"{self.district}/{self.drop_path().name}"

    def source_path(self, source: str) -> Path | None:
        return find_file(self.drop_path(), self.district_entry().files[source])

    def warehouse(self) -> sa.Engine:
        engine = make_engine(self.warehouse_url)
        create_tables(engine, WAREHOUSE_TABLES)
        return engine

    def prod_db(self) -> sa.Engine:
        return make_engine(self.prod_db_url)

    def record(self, context: dg.OpExecutionContext, records: list[ErrorRecord]) -> None:
        """Write error records to dm.IngestionErrors and the run log (the messages carry no student data)."""
        if not records:
            return
        engine = self.warehouse()
        try:
            record_errors(
                engine, records, district_id=self.district_entry().account_info_id, drop_id=self.drop_id,
                run_id=context.run.run_id,
            )
        finally:
            engine.dispose()
        for r in records:
            context.log.warning(f"[{r.stage}/{r.reason}] {r.message}")
