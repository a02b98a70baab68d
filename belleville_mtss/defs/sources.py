"""Source assets: one per file of the drop, and the two tables we read (prod db, warehouse)."""

import dagster as dg
import polars as pl

from ..lib.ingest import SourceFile, ingest_file
from ..lib.warehouse import account_info as account_info_table
from ..lib.warehouse import class_link_users, read_table
from .resources import MtssResource

FILE_SOURCES = {
    "powerschool_students": "PowerSchool student export of the drop",
    "star_reading": "Renaissance Star Reading export (SR.csv) of the drop",
    "star_math": "Renaissance Star Math export (SM.csv) of the drop",
    "star_early_literacy": "Renaissance Star Early Literacy export (SEL.csv) of the drop",
}


def _file_asset(source: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(name=source, group_name="sources", description=description, kinds={"csv"})
    def _asset(context: dg.AssetExecutionContext, mtss: MtssResource) -> dg.Output[SourceFile]:
        src = ingest_file(source, mtss.source_path(source), mtss.district_entry())
        mtss.record(context, [src.halted] if src.halted else [])
        meta = {"drop": mtss.drop_id, "file": src.file_name or "", "dagster/row_count": src.rows,
                "halted": src.halted.message if src.halted else ""}
        if src.info:
            meta |= {"bytes": src.info.size, "sha256": src.info.sha256, "columns": len(src.frame.columns)}
        return dg.Output(src, metadata=meta)

    return _asset


file_assets = [_file_asset(s, d) for s, d in FILE_SOURCES.items()]


@dg.asset(group_name="sources", kinds={"sql"}, description="dbo.ClassLinkUsers from the prod db (all tenants)")
def classlink_users(mtss: MtssResource) -> dg.Output[pl.DataFrame]:
    engine = mtss.prod_db()
    try:
        frame = read_table(engine, class_link_users)
    finally:
        engine.dispose()
    return dg.Output(frame, metadata={"dagster/row_count": frame.height})


@dg.asset(group_name="sources", kinds={"sql"}, description="dm.AccountInfo: districts of the EDU Data Warehouse")
def account_info(mtss: MtssResource) -> dg.Output[pl.DataFrame]:
    engine = mtss.warehouse()
    try:
        frame = read_table(engine, account_info_table)
    finally:
        engine.dispose()
    return dg.Output(frame, metadata={"dagster/row_count": frame.height})
