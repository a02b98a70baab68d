"""Validated frames: typed, schema-checked, bad rows counted out; a refused file is halted here."""

import dagster as dg
import polars as pl

from ..lib.ingest import SourceFile, ValidatedFile, validate_classlink, validate_powerschool, validate_star
from ..lib.catalog import CLASSLINK_FRAME, POWERSCHOOL_FRAME, STAR_FRAME
from .metadata import OWNERS, counts_md, table
from .partitions import drops
from .resources import MtssResource


def _finish(context, mtss: MtssResource, validated: ValidatedFile, errors: list) -> dg.Output[ValidatedFile]:
    mtss.record(context, context.partition_key, errors)
    if validated.halted and validated.file_name:
        mtss.mark_files(context, "halted", [validated.file_name])
    return dg.Output(validated, metadata=_metadata(validated))


def _metadata(v: ValidatedFile) -> dict:
    columns = {"powerschool_students": POWERSCHOOL_FRAME, "classlink_users": CLASSLINK_FRAME}.get(v.source, STAR_FRAME)
    meta = {
        **table(v.rows, columns),
        "file": v.file_name or "",
        "rows_rejected": sum(v.rejected.values()),
        "rejected_by_reason": counts_md("rejected rows by reason", v.rejected),
        "halted": v.halted.message if v.halted else "",
    }
    if v.headers:  # which of the registry's accepted headers each field was read from
        meta["headers_matched"] = dg.MetadataValue.md("| field | header read |\n|---|---|\n" + "\n".join(
            f"| {field} | {header or '(absent: optional, read as empty)'} |" for field, header in v.headers.items()))
    if v.warnings:
        meta["warnings"] = "; ".join(v.warnings)
    return meta


def _star_validated(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"validated_{source}", group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops, owners=OWNERS,
        ins={"src": dg.AssetIn(source)},
        description=f"{source}: columns bound by header name, dates and scores typed, bad rows rejected",
    )
    def _asset(context: dg.AssetExecutionContext, mtss: MtssResource, src: SourceFile) -> dg.Output[ValidatedFile]:
        return _finish(context, mtss, *validate_star(src, mtss.for_drop(context.partition_key)))

    return _asset


star_validated = [_star_validated(s) for s in ("star_reading", "star_math", "star_early_literacy")]


@dg.asset(group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops, owners=OWNERS,
          description="PowerSchool students: headers mapped by the district registry, duplicates rejected")
def validated_powerschool_students(
    context: dg.AssetExecutionContext, mtss: MtssResource, powerschool_students: SourceFile
) -> dg.Output[ValidatedFile]:
    return _finish(context, mtss, *validate_powerschool(powerschool_students, mtss.for_drop(context.partition_key)))


@dg.asset(group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops, owners=OWNERS,
          description="ClassLink student users of the district's tenant, emails normalised for linking")
def validated_classlink_users(
    context: dg.AssetExecutionContext, mtss: MtssResource, classlink_users: pl.DataFrame
) -> dg.Output[ValidatedFile]:
    return _finish(context, mtss, *validate_classlink(classlink_users, mtss.for_drop(context.partition_key)))


validation_assets = [*star_validated, validated_powerschool_students, validated_classlink_users]
