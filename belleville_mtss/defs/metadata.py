"""Turning the catalog (lib/read/catalog.py) and run figures into the metadata the Dagster UI shows and plots."""
import dagster as dg
import polars as pl

from ..lib.columns import Column

OWNERS = ["team:data-integration"]


def column_schema(columns: list[Column]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, type_, description=desc) for name, type_, desc in columns])


def column_lineage(lineage: dict[str, list[tuple[str, str]]]) -> dg.TableColumnLineage:
    return dg.TableColumnLineage({
        column: [dg.TableColumnDep(asset_key=dg.AssetKey(asset), column_name=src) for asset, src in deps]
        for column, deps in lineage.items()
    })


def table(rows: int, columns: list[Column], lineage: dict | None = None) -> dict:
    meta = {"dagster/row_count": rows, "dagster/column_schema": column_schema(columns)}
    if lineage:
        meta["dagster/column_lineage"] = column_lineage(lineage)
    return meta


def md_table(frame: pl.DataFrame) -> dg.MetadataValue:
    if frame.is_empty():
        return dg.MetadataValue.md("_none_")
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    body = "\n".join("| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.rows())
    return dg.MetadataValue.md(head + body)


def counts_md(title: str, counts: dict[str, int | float]) -> dg.MetadataValue:
    if not counts:
        return dg.MetadataValue.md(f"_no {title}_")
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return dg.MetadataValue.md(f"| {title} | count |\n|---|---|\n{rows}")
