"""Loads into the EDU Data Warehouse: one transaction per table, idempotent per drop."""

import dagster as dg
import polars as pl

from ..lib.warehouse import replace_results, replace_roster
from .identity import GATED, district_crosswalk
from .partitions import drops
from .resources import MtssResource


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED, deps=[district_crosswalk],
          partitions_def=drops,
          description="dm.StudentRoster: the district's roster, replaced whole in one transaction")
def dm_student_roster(context: dg.AssetExecutionContext, mtss: MtssResource, student_roster: pl.DataFrame) -> dg.MaterializeResult:
    engine = mtss.warehouse()
    try:
        written = replace_roster(engine, mtss.for_drop(context.partition_key).account_info_id, student_roster)
    finally:
        engine.dispose()
    return dg.MaterializeResult(metadata={"rows_written": written, "dagster/row_count": written})


@dg.asset(group_name="warehouse", kinds={"sql"}, automation_condition=GATED, deps=[district_crosswalk],
          partitions_def=drops,
          description="dm.AssessmentResults: each (subject, school year) of the drop replaced in one transaction")
def dm_assessment_results(context: dg.AssetExecutionContext, mtss: MtssResource, assessment_results: pl.DataFrame) -> dg.MaterializeResult:
    engine = mtss.warehouse()
    try:
        written = replace_results(engine, mtss.for_drop(context.partition_key).account_info_id, assessment_results)
    finally:
        engine.dispose()
    return dg.MaterializeResult(metadata={"rows_written": written, "dagster/row_count": written})


warehouse_assets = [dm_student_roster, dm_assessment_results]
