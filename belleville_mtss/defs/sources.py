"""Source assets: the received drop, one asset per catalogued file of it (lib/read/catalog.py), and the two tables we
read. Each calls one stage of lib/pipeline.py."""
import dagster as dg
import polars as pl

from ..lib import pipeline
from ..lib.read.catalog import FILES, FileSource
from ..lib.receive.drops import DropRefused, ReceivedDrop, find_file, receive_or_replay
from ..lib.load.errors import ErrorRecord
from ..lib.read.ingest import SourceFile, read_staged_file
from ..lib.receive.sftp import SftpFatal, SftpTransient
from ..lib.read.theirs import SourceTableError
from ..lib.receive.vault import VaultError
from ..lib.load.warehouse import record_received
from ..lib.columns import file_columns
from .metadata import OWNERS, column_schema
from .partitions import drops
from .resources import DropServerResource, ErrorLogResource, ProdDbResource, WarehouseResource


@dg.asset(group_name="sources", partitions_def=drops, kinds={"sftp"}, owners=OWNERS,
          description="The drop's files, hashed and encrypted into local staging as they arrive (checksums in "
                      "dm.IngestionFiles), replayable")
def received_drop(context: dg.AssetExecutionContext, drop_server: DropServerResource, error_log: ErrorLogResource,
                  ) -> dg.Output[ReceivedDrop]:
    drop = error_log.drop(context)
    key, district = drop.name, drop.district
    try:
        received = receive_or_replay(drop_server.source(), drop.key.district, district.drop_folder, drop.key.drop,
                                     drop_server.staging(drop.key), drop_server.vault_key(), drop_server.limits(),
                                     transient=(SftpTransient,))
    except DropRefused as exc:
        error_log.record(context, key, [ErrorRecord("receive", exc.reason, exc.message, exc.file_name)])
        raise dg.Failure(f"refused: {exc.message}") from None
    except (LookupError, SftpFatal, SftpTransient) as exc:
        raise dg.Failure(str(exc)) from None
    earlier = record_received(error_log.engine(), key, district.account_info_id, received.version,
                              list(received.files), context.run.run_id)
    return dg.Output(received, metadata={
        "drop": key, "version": received.version, "replayed_from_staging": received.replayed,
        "files": dg.MetadataValue.md("| file | bytes | sha256 | same bytes as |\n|---|---|---|---|\n" + "\n".join(
            f"| {f.name} | {f.size} | {f.sha256[:16]}… | {earlier[f.name] or '(new)'} |" for f in received.files)),
    })


def file_asset(source: FileSource) -> dg.AssetsDefinition:
    @dg.asset(name=source.name, group_name="sources", description=source.description, kinds={"csv"},
              partitions_def=drops, owners=OWNERS)
    def _asset(context: dg.AssetExecutionContext, drop_server: DropServerResource, error_log: ErrorLogResource,
               received_drop: ReceivedDrop) -> dg.Output[SourceFile]:
        entry = error_log.drop(context).district
        staged = find_file(received_drop.files, entry.files[source.name])
        if staged is None:
            src = pipeline.read(source, None, entry)
        else:
            try:
                src = read_staged_file(drop_server.vault_key(), source.name, received_drop.folder, staged, entry,
                                       drop_server.max_file_rows)
            except (OSError, VaultError) as exc:
                raise dg.Failure(f"staged copy of {staged.name} unusable: {exc}; re-receive the drop") from None
        error_log.record(context, context.partition_key, [src.halted] if src.halted else [])
        meta = {"file": src.file_name or "", "dagster/row_count": src.rows,
                "halted": src.halted.message if src.halted else ""}
        if src.info:
            meta |= {"bytes": src.info.size, "sha256": src.info.sha256}
        if src.frame is not None:  # the columns read, as the file names them
            meta["dagster/column_schema"] = column_schema(file_columns(source, entry, src.frame))
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


source_assets = [received_drop, *[file_asset(f) for f in FILES], classlink_users, account_info]
