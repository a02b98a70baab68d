"""Validated frames, one per catalogued file (lib/read/catalog.py) and the ClassLink users: typed, schema-checked, bad
rows counted out; a refused file is halted here."""
import dagster as dg
import polars as pl

from ..lib import pipeline
from ..lib.read.catalog import FILES, FileSource
from ..lib.columns import CLASSLINK_FRAME, FRAMES, lineage
from ..lib.district.registry import District
from ..lib.read.ingest import SourceFile, ValidatedFile
from .metadata import OWNERS, counts_md, table
from .partitions import drops
from .resources import ErrorLogResource


def _finish(context, error_log: ErrorLogResource, district: District, validated: ValidatedFile,
            errors: list) -> dg.Output[ValidatedFile]:
    error_log.record(context, context.partition_key, errors)
    if validated.halted and validated.file_name:
        error_log.mark_files(context, "halted", [validated.file_name])
    return dg.Output(validated, metadata=_metadata(district, validated))


def _metadata(district: District, v: ValidatedFile) -> dict:
    meta = {
        **table(v.rows, FRAMES.get(v.source, CLASSLINK_FRAME), lineage(district)[f"validated_{v.source}"]),
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


def validated_asset(source: FileSource) -> dg.AssetsDefinition:
    @dg.asset(name=source.validated, group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops,
              owners=OWNERS, ins={"src": dg.AssetIn(source.name)},
              description=f"{source.name}: columns bound by header name, values typed, bad rows rejected")
    def _asset(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
               src: SourceFile) -> dg.Output[ValidatedFile]:
        district = error_log.drop(context).district
        return _finish(context, error_log, district, *pipeline.validate(src, district))

    return _asset


@dg.asset(group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops, owners=OWNERS,
          description="ClassLink student users of the district's tenant, emails normalised for linking")
def validated_classlink_users(context: dg.AssetExecutionContext,
                              error_log: ErrorLogResource, classlink_users: pl.DataFrame) -> dg.Output[ValidatedFile]:
    district = error_log.drop(context).district
    return _finish(context, error_log, district, *pipeline.classlink(classlink_users, district))


validation_assets = [*[validated_asset(f) for f in FILES], validated_classlink_users]
