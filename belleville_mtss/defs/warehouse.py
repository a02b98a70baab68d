"""Loads into the EDU Data Warehouse: one transaction per table, idempotent per drop."""
from contextlib import contextmanager

import dagster as dg
import polars as pl
import sqlalchemy as sa

from ..lib.catalog import POWERSCHOOL
from ..lib.columns import RESULTS_TABLE, ROSTER_TABLE, STAR_ASSETS, results_lineage, roster_lineage
from ..lib.warehouse import replace_results, replace_roster
from .identity import GATED
from .metadata import OWNERS, table
from .partitions import drops
from .resources import ErrorLogResource, RegistryResource, WarehouseResource


@contextmanager
def _load(warehouse: WarehouseResource, table_name: str):
    """A warehouse load; a database error is reported without the server's detail, which can quote key values."""
    try:
        yield warehouse.engine()
    except sa.exc.DBAPIError as exc:
        raise dg.Failure(f"loading {table_name} failed and was rolled back ({type(exc.orig).__name__}); "
                         "nothing of this drop was written to it") from None


def _files(crosswalk: pl.DataFrame, sources) -> list[str]:
    """The drop's files that fed a load (halted ones excepted: they keep their outcome)."""
    return crosswalk.filter(pl.col("source").is_in(list(sources)) & pl.col("file_name").is_not_null())[
        "file_name"].unique().to_list()


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
          description="dm.StudentRoster: the district's roster, replaced whole in one transaction")
def dm_student_roster(context: dg.AssetExecutionContext, registry: RegistryResource, warehouse: WarehouseResource,
                      error_log: ErrorLogResource, student_roster: pl.DataFrame, district_crosswalk: pl.DataFrame,
                      ) -> dg.MaterializeResult:
    district = registry.for_drop(context.partition_key)
    with _load(warehouse, "dm.StudentRoster") as engine:
        written = replace_roster(engine, district.account_info_id, student_roster)
    error_log.mark_files(context, "loaded", _files(district_crosswalk, [POWERSCHOOL.name]))
    return dg.MaterializeResult(metadata={**table(written, ROSTER_TABLE, roster_lineage(district)),
                                          "rows_written": written})


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
          description="dm.AssessmentResults: each (subject, school year) of the drop replaced in one transaction")
def dm_assessment_results(context: dg.AssetExecutionContext, registry: RegistryResource,
                          warehouse: WarehouseResource, error_log: ErrorLogResource, assessment_results: pl.DataFrame,
                          district_crosswalk: pl.DataFrame) -> dg.MaterializeResult:
    district = registry.for_drop(context.partition_key)
    with _load(warehouse, "dm.AssessmentResults") as engine:
        written = replace_results(engine, district.account_info_id, assessment_results)
    error_log.mark_files(context, "loaded", _files(district_crosswalk, STAR_ASSETS))
    return dg.MaterializeResult(metadata={**table(written, RESULTS_TABLE, results_lineage(district)),
                                          "rows_written": written})


warehouse_assets = [dm_student_roster, dm_assessment_results]
