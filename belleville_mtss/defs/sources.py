"""Source assets: the received drop, one asset per file of it, and the two tables we read."""
from pathlib import Path

import dagster as dg
import polars as pl
import sqlalchemy as sa

from ..lib.drops import DropRefused, ReceivedDrop, find_file, read_staged, receive_or_replay
from ..lib.csvfile import FileInfo
from ..lib.errors import ErrorRecord
from ..lib.ingest import SourceFile, ingest_file
from ..lib.sftp import SftpFatal, SftpTransient
from ..lib.vault import VaultError
from ..lib.theirs import SourceTableError
from ..lib.warehouse import record_received
from .metadata import OWNERS
from .partitions import drops
from .resources import MtssResource

FILE_SOURCES = {
    "powerschool_students": "PowerSchool student export of the drop",
    "star_reading": "Renaissance Star Reading export (SR.csv) of the drop",
    "star_math": "Renaissance Star Math export (SM.csv) of the drop",
    "star_early_literacy": "Renaissance Star Early Literacy export (SEL.csv) of the drop",
}


@dg.asset(group_name="sources", partitions_def=drops, kinds={"sftp"}, owners=OWNERS,
          description="The drop's files copied to local staging (checksums in dm.IngestionFiles), replayable")
def received_drop(context: dg.AssetExecutionContext, mtss: MtssResource) -> dg.Output[ReceivedDrop]:
    drop = mtss.drop_key(context, context.partition_key, record=True)
    key = str(drop)
    entry = mtss.district_entry(drop.district, context)
    try:
        received = receive_or_replay(mtss.drop_source(), drop.district, entry.drop_folder, drop.drop,
                                     mtss.staging(drop), mtss.vault_key(), mtss.limits(), transient=(SftpTransient,))
    except DropRefused as exc:
        mtss.record(context, key, [ErrorRecord("receive", exc.reason, exc.message, exc.file_name)])
        raise dg.Failure(f"refused: {exc.message}") from None
    except (LookupError, SftpFatal, SftpTransient) as exc:
        raise dg.Failure(str(exc)) from None
    earlier = record_received(mtss.warehouse(), key, entry.account_info_id, received.version, list(received.files),
                              context.run.run_id)
    return dg.Output(received, metadata={
        "drop": key, "version": received.version, "replayed_from_staging": received.replayed,
        "files": dg.MetadataValue.md("| file | bytes | sha256 | same bytes as |\n|---|---|---|---|\n" + "\n".join(
            f"| {f.name} | {f.size} | {f.sha256[:16]}… | {earlier[f.name] or '(new)'} |" for f in received.files)),
    })


def _file_asset(source: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(name=source, group_name="sources", description=description, kinds={"csv"}, partitions_def=drops,
              owners=OWNERS)
    def _asset(context: dg.AssetExecutionContext, mtss: MtssResource, received_drop: ReceivedDrop
               ) -> dg.Output[SourceFile]:
        entry = mtss.for_drop(context.partition_key)
        staged = find_file(received_drop.files, entry.files[source])
        if staged is None:
            src = ingest_file(source, None, entry)
        else:
            try:
                data = read_staged(Path(received_drop.folder), staged, mtss.vault_key())
            except (OSError, VaultError) as exc:
                raise dg.Failure(f"staged copy of {staged.name} unusable: {exc}; re-receive the drop") from None
            info = FileInfo(staged.name, staged.name, staged.size, staged.sha256)  # checked by read_staged
            src = ingest_file(source, Path(staged.name), entry, data, info, mtss.max_file_rows)
        mtss.record(context, context.partition_key, [src.halted] if src.halted else [])
        meta = {"file": src.file_name or "", "dagster/row_count": src.rows,
                "halted": src.halted.message if src.halted else ""}
        if src.info:
            meta |= {"bytes": src.info.size, "sha256": src.info.sha256, "columns": len(src.frame.columns)}
        return dg.Output(src, metadata=meta)

    return _asset


file_assets = [_file_asset(s, d) for s, d in FILE_SOURCES.items()]


def _snapshot(context, mtss: MtssResource, label: str, read) -> dg.Output[pl.DataFrame]:
    """A table as read for this drop (the crosswalk and links of a drop are judged against this snapshot). A table
    that is missing or unreadable is recorded (when the error log is reachable) and fails the step in one line."""
    mtss.drop_key(context, context.partition_key)
    try:
        frame = read()
    except SourceTableError as exc:
        try:
            mtss.record(context, context.partition_key, [ErrorRecord("source", "source_table", str(exc), label)])
        except (dg.Failure, sa.exc.SQLAlchemyError):
            pass  # the warehouse itself is out of reach: the run's failure message says it all
        raise dg.Failure(f"refused: {exc}") from None
    return dg.Output(frame, metadata={"dagster/row_count": frame.height})


@dg.asset(group_name="sources", kinds={"sql"}, partitions_def=drops, owners=OWNERS,
          description="dbo.ClassLinkUsers: the student users of the drop's ClassLink tenant, filtered in the prod db")
def classlink_users(context: dg.AssetExecutionContext, mtss: MtssResource) -> dg.Output[pl.DataFrame]:
    return _snapshot(context, mtss, mtss.classlink_table,
                     lambda: mtss.classlink_students(mtss.for_drop(context.partition_key)))


@dg.asset(group_name="sources", kinds={"sql"}, partitions_def=drops, owners=OWNERS,
          description="dm.AccountInfo: districts of the EDU Data Warehouse, as read for this drop")
def account_info(context: dg.AssetExecutionContext, mtss: MtssResource) -> dg.Output[pl.DataFrame]:
    return _snapshot(context, mtss, mtss.account_info_table, mtss.account_info)


source_assets = [received_drop, *file_assets, classlink_users, account_info]
