"""Loads into the EDU Data Warehouse: one transaction per table, idempotent per drop."""
from contextlib import contextmanager

import dagster as dg
import polars as pl
import sqlalchemy as sa

from ..lib import checks
from ..lib.read.catalog import POWERSCHOOL
from ..lib.columns import RESULTS_TABLE, ROSTER_TABLE, STAR_ASSETS, lineage, lineage_markdown
from ..lib.load.warehouse import assessment_results as results_table
from ..lib.load.warehouse import load_figures, replace_results, replace_roster, results_scopes
from ..lib.load.warehouse import student_roster as student_roster_table
from .district import GATED, check_specs
from .metadata import OWNERS, table
from .partitions import drops
from .resources import ErrorLogResource, WarehouseResource


@contextmanager
def _load(warehouse: WarehouseResource, table_name: str):
    """A warehouse load; a database error is reported without the server's detail, which can quote key values."""
    try:
        yield warehouse.engine()
    except sa.exc.DBAPIError as exc:
        raise dg.Failure(f"loading {table_name} failed and was rolled back ({type(exc.orig).__name__}); "
                         "nothing of this drop was written to it") from None


def _load_results(context, error_log: ErrorLogResource, engine, table: sa.Table, account_info_id: int,
                  frame: pl.DataFrame, scopes=None):
    """The load's checks, read back from the table: a failure is logged (the rows stay: the load committed)."""
    name, frame_rows = f"{table.schema}.{table.name}", frame.height
    figures = load_figures(engine, table, account_info_id, context.partition_key, scopes)
    for outcome in checks.load_checks(name, frame_rows, figures, account_info_id):
        error_log.record(context, context.partition_key, outcome.records)
        yield dg.AssetCheckResult(check_name=outcome.name, passed=outcome.passed,
                                  severity=dg.AssetCheckSeverity.ERROR, metadata={"why": outcome.why, **figures})


def _files(crosswalk: pl.DataFrame, sources) -> list[str]:
    """The drop's files that fed a load (halted ones excepted: they keep their outcome)."""
    return crosswalk.filter(pl.col("source").is_in(list(sources)) & pl.col("file_name").is_not_null())[
        "file_name"].unique().to_list()


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
          check_specs=check_specs("load", "dm_student_roster"),
          description="dm.StudentRoster: the district's roster, replaced whole in one transaction")
def dm_student_roster(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      error_log: ErrorLogResource, student_roster: pl.DataFrame, district_crosswalk: pl.DataFrame):
    district = error_log.drop(context).district
    with _load(warehouse, "dm.StudentRoster") as engine:
        written = replace_roster(engine, district.account_info_id, student_roster)
    error_log.mark_files(context, "loaded", _files(district_crosswalk, [POWERSCHOOL.name]))
    yield dg.MaterializeResult(metadata={**table(written, ROSTER_TABLE, lineage(district)["dm_student_roster"]),
                                         "rows_written": written,
                                         "lineage": dg.MetadataValue.md(lineage_markdown(district, "dm_student_roster"))})
    yield from _load_results(context, error_log, engine, student_roster_table, district.account_info_id,
                             student_roster)


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
          check_specs=check_specs("load", "dm_assessment_results"),
          description="dm.AssessmentResults: each (subject, school year) of the drop replaced in one transaction")
def dm_assessment_results(context: dg.AssetExecutionContext,
                          warehouse: WarehouseResource, error_log: ErrorLogResource, assessment_results: pl.DataFrame,
                          district_crosswalk: pl.DataFrame):
    district = error_log.drop(context).district
    with _load(warehouse, "dm.AssessmentResults") as engine:
        written = replace_results(engine, district.account_info_id, assessment_results)
    error_log.mark_files(context, "loaded", _files(district_crosswalk, STAR_ASSETS))
    yield dg.MaterializeResult(metadata={
        **table(written, RESULTS_TABLE, lineage(district)["dm_assessment_results"]), "rows_written": written,
        "lineage": dg.MetadataValue.md(lineage_markdown(district, "dm_assessment_results"))})
    yield from _load_results(context, error_log, engine, results_table, district.account_info_id,
                             assessment_results, results_scopes(assessment_results))


warehouse_assets = [dm_student_roster, dm_assessment_results]
