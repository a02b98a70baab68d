"""Read: one source asset per kind of file of every source (lib/sources/) and the two tables we read, then their
validated frames: typed, schema-checked, bad rows counted out; a refused file is halted here (lib/read/). A file
the district does not send is materialized as not sent, never halted."""
import dagster as dg
import polars as pl

from ..lib.columns import FRAMES, file_columns, lineage
from ..lib.district.registry import District
from ..lib.load.errors import ErrorRecord
from ..lib.read.ingest import (SourceFile, ValidatedFile, ingest_file, read_staged_file, validate_classlink,
                               validate_file)
from ..lib.sources import FILES, SOURCE_OF, FileKind
from ..lib.read.theirs import SourceTableError
from ..lib.receive.drops import ReceivedDrop
from ..lib.receive.vault import VaultError
from .metadata import OWNERS, column_schema, counts_md, table
from .partitions import drops
from .resources import DropServerResource, ErrorLogResource, ProdDbResource, WarehouseResource


def file_asset(kind: FileKind) -> dg.AssetsDefinition:
    @dg.asset(name=kind.asset, group_name="sources", description=kind.description, kinds={"csv"},
              partitions_def=drops, owners=OWNERS, tags={"mtss/source": SOURCE_OF[kind.asset].name})
    def _asset(context: dg.AssetExecutionContext, drop_server: DropServerResource, error_log: ErrorLogResource,
               received_drop: ReceivedDrop) -> dg.Output[SourceFile]:
        entry = error_log.drop(context).district
        pattern = entry.file_patterns.get(kind.asset)
        if pattern is None:  # a file the district does not send: said, and nothing more to do
            return dg.Output(SourceFile(kind.asset, None, sent=False), metadata={"sent": False})
        staged = kind.found_in(received_drop.files, pattern)  # a drop with two rosters was refused at receipt
        if not staged:
            src = ingest_file(kind, None, entry)
        else:
            try:
                src = read_staged_file(drop_server.vault_key(), kind, received_drop.folder, staged, entry,
                                       drop_server.max_file_rows)
            except (OSError, VaultError) as exc:
                raise dg.Failure(f"staged copy of {staged[0].name} unusable: {exc}; re-receive the drop") from None
        error_log.record(context, context.partition_key, [src.halted] if src.halted else [])
        meta = {"file": src.file_name or "", "dagster/row_count": src.rows,
                "halted": src.halted.message if src.halted else "", "sent": src.sent}
        if src.parts:
            meta["read_with"] = ", ".join(src.parts)
        if src.info:
            meta |= {"bytes": src.info.size, "sha256": src.info.sha256}
        if src.frame is not None:  # the columns read, as the file names them
            meta["dagster/column_schema"] = column_schema(file_columns(kind, entry, src.frame))
        return dg.Output(src, metadata=meta)

    return _asset


def _snapshot(context, error_log: ErrorLogResource, label: str, read) -> dg.Output[pl.DataFrame]:
    """A table as read for this drop (`read` takes its district; the crosswalk and links of a drop are judged
    against this snapshot). A table
    that is missing or unreadable is recorded (when the error log is reachable) and fails the step in one line."""
    try:
        frame = read(error_log.drop(context).district)
    except SourceTableError as exc:
        try:
            error_log.record(context, context.partition_key, [ErrorRecord("source", "source_table", str(exc), label)])
        except Exception:  # noqa: BLE001 - the warehouse itself is out of reach: the failure message says it all
            pass
        raise dg.Failure(f"refused: {exc}") from None
    return dg.Output(frame, metadata={"dagster/row_count": frame.height})


@dg.asset(group_name="sources", kinds={"sql"}, partitions_def=drops, owners=OWNERS,
          description="dbo.ClassLinkUsers: the student users of the drop's ClassLink tenant, filtered in the prod db")
def classlink_users(context: dg.AssetExecutionContext, prod_db: ProdDbResource,
                    error_log: ErrorLogResource) -> dg.Output[pl.DataFrame]:
    return _snapshot(context, error_log, prod_db.classlink_table, prod_db.classlink_students)


@dg.asset(group_name="sources", kinds={"sql"}, partitions_def=drops, owners=OWNERS,
          description="dm.AccountInfo: districts of the EDU Data Warehouse, as read for this drop")
def account_info(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 error_log: ErrorLogResource) -> dg.Output[pl.DataFrame]:
    return _snapshot(context, error_log, warehouse.account_info_table, lambda _district: warehouse.account_info())


def _finish(context, error_log: ErrorLogResource, district: District, validated: ValidatedFile,
            errors: list) -> dg.Output[ValidatedFile]:
    error_log.record(context, context.partition_key, errors)
    if validated.halted and validated.file_name:
        error_log.mark_files(context, "halted", [validated.file_name, *validated.parts])
    return dg.Output(validated, metadata=_metadata(district, validated))


def _metadata(district: District, v: ValidatedFile) -> dict:
    meta = {
        **table(v.rows, FRAMES[v.source], lineage(district).get(f"validated_{v.source}", {})),
        "file": v.file_name or "", "sent": v.sent,
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


def validated_asset(kind: FileKind) -> dg.AssetsDefinition:
    @dg.asset(name=kind.validated, group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops,
              owners=OWNERS, ins={"src": dg.AssetIn(kind.asset)}, tags={"mtss/source": SOURCE_OF[kind.asset].name},
              description=f"{kind.asset}: columns bound by header name, values typed, bad rows rejected")
    def _asset(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
               src: SourceFile) -> dg.Output[ValidatedFile]:
        if not src.sent:
            return dg.Output(ValidatedFile(src.source, None, sent=False), metadata={"sent": False})
        district = error_log.drop(context).district
        return _finish(context, error_log, district, *validate_file(src, district))

    return _asset


@dg.asset(group_name="validated", kinds={"polars", "pandera"}, partitions_def=drops, owners=OWNERS,
          description="ClassLink student users of the district's tenant, emails normalised for linking")
def validated_classlink_users(context: dg.AssetExecutionContext,
                              error_log: ErrorLogResource, classlink_users: pl.DataFrame) -> dg.Output[ValidatedFile]:
    district = error_log.drop(context).district
    return _finish(context, error_log, district, *validate_classlink(classlink_users, district))


source_assets = [*[file_asset(f) for f in FILES], classlink_users, account_info]
validation_assets = [*[validated_asset(f) for f in FILES], validated_classlink_users]
