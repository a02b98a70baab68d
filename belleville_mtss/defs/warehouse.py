"""Loads into the EDU Data Warehouse: one transaction per table, idempotent per drop."""

from contextlib import contextmanager

import dagster as dg
import polars as pl
import sqlalchemy as sa

from ..lib.warehouse import replace_results, replace_roster
from .identity import GATED
from ..lib.catalog import RESULTS_TABLE, ROSTER_TABLE, STAR_ASSETS, results_lineage, roster_lineage
from .metadata import OWNERS, table
from .partitions import drops
from .resources import MtssResource


@contextmanager
def _load(mtss: MtssResource, table: str):
    """A warehouse load; a database error is reported without the server's detail, which can quote key values."""
    try:
        yield mtss.warehouse()
    except sa.exc.DBAPIError as exc:
        raise dg.Failure(f"loading {table} failed and was rolled back ({type(exc.orig).__name__}); "
                         "nothing of this drop was written to it") from None


def _files(crosswalk: pl.DataFrame, sources) -> list[str]:
    """The drop's files that fed a load (halted ones excepted: they keep their outcome)."""
    return crosswalk.filter(pl.col("source").is_in(list(sources)) & pl.col("file_name").is_not_null())[
        "file_name"].unique().to_list()


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED,
          partitions_def=drops, owners=OWNERS,
          description="dm.StudentRoster: the district's roster, replaced whole in one transaction")
def dm_student_roster(context: dg.AssetExecutionContext, mtss: MtssResource, student_roster: pl.DataFrame,
                      district_crosswalk: pl.DataFrame) -> dg.MaterializeResult:
    with _load(mtss, "dm.StudentRoster") as engine:
        written = replace_roster(engine, mtss.for_drop(context.partition_key).account_info_id, student_roster)
    mtss.mark_files(context, "loaded", _files(district_crosswalk, ["powerschool_students"]))
    lineage = roster_lineage(mtss.for_drop(context.partition_key))
    return dg.MaterializeResult(metadata={**table(written, ROSTER_TABLE, lineage), "rows_written": written})


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED,
          partitions_def=drops, owners=OWNERS,
          description="dm.AssessmentResults: each (subject, school year) of the drop replaced in one transaction")
def dm_assessment_results(context: dg.AssetExecutionContext, mtss: MtssResource, assessment_results: pl.DataFrame,
                          district_crosswalk: pl.DataFrame) -> dg.MaterializeResult:
    with _load(mtss, "dm.AssessmentResults") as engine:
        written = replace_results(engine, mtss.for_drop(context.partition_key).account_info_id, assessment_results)
    mtss.mark_files(context, "loaded", _files(district_crosswalk, STAR_ASSETS))
    lineage = results_lineage(mtss.for_drop(context.partition_key))
    return dg.MaterializeResult(metadata={**table(written, RESULTS_TABLE, lineage), "rows_written": written})


warehouse_assets = [dm_student_roster, dm_assessment_results]
