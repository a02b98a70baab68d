"""Read: one source asset per kind of file of every source (lib/sources/) and the two tables we read, then their
validated frames: typed, schema-checked, bad rows counted out; a refused file is halted here (lib/read/). A file
the district does not send is materialized as not sent, never halted. All of them are made by one step
(`read_drop`): the two tables and the files the district sends are read and validated at the same time, each on a
worker thread (polars, the decryption and the database drivers release the GIL), and a kind of file it does not
send costs an output, not a step."""
import dagster as dg
import polars as pl

from ..lib.columns import FRAMES, file_columns, lineage
from ..lib.district.registry import District
from ..lib.load.errors import ErrorRecord
from ..lib.read.ingest import (SourceFile, ValidatedFile, ingest_file, read_staged_file, readers, reading_order,
                               validate_classlink, validate_file)
from ..lib.sources import FILES, SOURCE_OF, FileKind
from ..lib.read.theirs import SourceTableError
from ..lib.receive.drops import ReceivedDrop, why_unreadable
from ..lib.receive.vault import VaultError
from .district import BUILT_ON_VERDICT
from .metadata import OWNERS, column_schema, counts_md, table
from .partitions import drops
from .resources import DropServerResource, ErrorLogResource, ProdDbResource, WarehouseResource


def _outs(kind: FileKind) -> dict[str, dg.AssetOut]:
    tags = {"mtss/source": SOURCE_OF[kind.asset].name}
    # A file asset is a record (its metadata: file, bytes, SHA-256, rows, columns), no value at rest: its rows are
    # the staged copy's (encrypted, checksum sealed in), which no later step reads again, and student data at rest
    # is not kept twice. What a step reads is the validated frame.
    return {kind.asset: dg.AssetOut(group_name="sources", description=kind.description, kinds={"csv"},
                                    owners=OWNERS, tags=tags, is_required=False, dagster_type=dg.Nothing),
            kind.validated: dg.AssetOut(group_name="validated", kinds={"polars", "pandera"}, owners=OWNERS, tags=tags,
                                        is_required=False, description=f"{kind.asset}: columns bound by header name, "
                                        "values typed, bad rows rejected")}


class Unusable(Exception):
    """A staged copy that is missing or fails its checksum (the check of a replay: lib/receive/drops.py), or that a
    later receipt of the drop replaced before it was read."""

    def __init__(self, file_name: str, error: str, what_follows: str):
        super().__init__(f"the staged copy of {file_name} is unusable ({error}); {what_follows}: receive it again")
        self.file_name = file_name


def unusable(context, error_log: ErrorLogResource, stage: str, exc: Unusable) -> dg.Failure:
    """A step that found a staged copy unusable: its error row, and the failure that ends the step."""
    error_log.record(context, context.partition_key,
                     [ErrorRecord(stage, "staged_copy_unusable", str(exc), exc.file_name)])
    return dg.Failure(str(exc))


def _read(kind: FileKind, entry: District, drop_server: DropServerResource, received_drop: ReceivedDrop,
          staged: tuple, validate: bool) -> tuple[dict, ErrorRecord | None, tuple[ValidatedFile, list] | None]:
    """One kind of file the district sends: read from its staged copy, then validated when asked; returned as its
    file asset's record, why it was halted, and the validated file. The frame as read is let go here, once typed:
    a drop's files wait for each other in memory as typed frames only. Runs on a worker thread: it only reads and
    computes; the step records and reports. `staged`: its files among the drop's (`FileKind.found_in`)."""
    if not staged:
        src = ingest_file(kind, None, entry)
    else:
        try:
            src = read_staged_file(drop_server.vault_key(), kind, received_drop.folder, staged, entry,
                                   drop_server.max_file_rows)
        except VaultError as exc:  # gone, altered or cut (read_staged); or swapped for a later receipt's copy
            raise Unusable(staged[0].name, why_unreadable(received_drop, exc), "nothing of the drop is loaded") \
                from None
    validated = validate_file(src, entry) if validate else None
    return _file_metadata(kind, entry, src), src.halted, validated


def _file_metadata(kind: FileKind, entry: District, src: SourceFile) -> dict:
    meta = {"file": src.file_name or "", "dagster/row_count": src.rows,
            "halted": src.halted.message if src.halted else "", "sent": src.sent}
    if src.parts:
        meta["read_with"] = ", ".join(src.parts)
    if src.info:
        meta |= {"bytes": src.info.size, "sha256": src.info.sha256}
    if src.frame is not None:  # the columns read, as the file names them
        meta["dagster/column_schema"] = column_schema(file_columns(kind, entry, src.frame))
    return meta


TABLES = {  # the two tables a drop is judged against, read for each drop
    "classlink_users": dg.AssetOut(group_name="sources", kinds={"sql"}, owners=OWNERS, is_required=False,
                                   description="dbo.ClassLinkUsers: the student users of the drop's ClassLink "
                                               "tenant, filtered in the prod db"),
    "account_info": dg.AssetOut(group_name="sources", kinds={"sql"}, owners=OWNERS, is_required=False,
                                description="dm.AccountInfo: districts of the EDU Data Warehouse, as read for "
                                            "this drop"),
    "validated_classlink_users": dg.AssetOut(group_name="validated", kinds={"polars", "pandera"}, owners=OWNERS,
                                             is_required=False, description="ClassLink student users of the "
                                             "district's tenant, emails normalised for linking"),
}
_DEPS = {"classlink_users": set(), "account_info": set(),
         "validated_classlink_users": {dg.AssetKey("classlink_users")},
         **{name: {dg.AssetKey(kind.asset if name == kind.validated else "received_drop")}
            for kind in FILES for name in (kind.asset, kind.validated)}}


@dg.multi_asset(outs={**TABLES, **{name: out for kind in FILES for name, out in _outs(kind).items()}},
                can_subset=True, partitions_def=drops, internal_asset_deps=_DEPS)
def read_drop(context: dg.AssetExecutionContext, drop_server: DropServerResource, error_log: ErrorLogResource,
              prod_db: ProdDbResource, warehouse: WarehouseResource, received_drop: ReceivedDrop):
    entry = error_log.drop(context).district
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    if selected - {"classlink_users", "account_info"}:
        # validated frames made again (a limit raised, a source added to the registry: other frames of the same
        # bytes): nothing built on the earlier ones stays, or a later subset run loads them unchecked; nor a frame
        # of a kind of file the entry no longer lists, which a run leaves out (defs/assets.py) and the steps after
        # would refuse as read under another entry (`frames_of`)
        context.resources.io_manager.forget(context.partition_key, *BUILT_ON_VERDICT,
                                            *(k.validated for k in FILES if k.asset not in entry.file_patterns))
    kinds = [k for k in FILES if {k.asset, k.validated} & selected]
    sent = [k for k in kinds if k.asset in entry.file_patterns]
    # each kind's files among the drop's (two rosters: refused at receipt), handed to the readers largest first
    staged = {k: k.found_in(received_drop.files, entry.file_patterns[k.asset]) for k in sent}
    order = reading_order({k: sum(f.size for f in files) for k, files in staged.items()})
    tables = {"classlink_users": (prod_db.classlink_table, prod_db.classlink_students),
              "account_info": (warehouse.account_info_table, lambda _district: warehouse.account_info())}
    needed = selected | ({"classlink_users"} if "validated_classlink_users" in selected else set())
    wanted = [t for t in tables if t in needed]  # the ClassLink table is read for its validated frame too
    with readers(len(sent) + len(wanted), "mtss-read") as pool:
        reading = {t: pool.submit(_table, tables[t][1], entry) for t in wanted}
        try:
            read = dict(zip(order, pool.map(lambda k: _read(k, entry, drop_server, received_drop, staged[k],
                                                            k.validated in selected), order)))
        except Unusable as exc:  # the whole step fails: no file of a damaged copy is loaded
            raise unusable(context, error_log, "ingest", exc) from None
        frames = {t: _snapshot(context, error_log, tables[t][0], future) for t, future in reading.items()}
    for t in ("classlink_users", "account_info"):
        if t in selected:
            yield dg.Output(frames[t], output_name=t, metadata={"dagster/row_count": frames[t].height})
    if "validated_classlink_users" in selected:
        yield _finish(context, error_log, entry, *validate_classlink(frames["classlink_users"], entry),
                      output_name="validated_classlink_users")
    for kind in kinds:  # recorded and reported in the order of the sources, whatever order the reads ended in
        if kind not in read:  # a file the district does not send: said, and nothing more to do
            meta, validated = {"sent": False}, None
            if kind.validated in selected:
                validated = ValidatedFile(kind.asset, None, sent=False), []
        else:
            meta, halted, validated = read[kind]
            error_log.record(context, context.partition_key, [halted] if halted else [])
        if kind.asset in selected:
            yield dg.Output(None, output_name=kind.asset, metadata=meta)
        if validated is not None:
            yield _finish(context, error_log, entry, *validated, output_name=kind.validated)


def _table(read, district: District) -> pl.DataFrame | SourceTableError:
    """A table as read for this drop (`read` takes its district), or why it could not be: on a worker thread."""
    try:
        return read(district)
    except SourceTableError as exc:
        return exc


def _snapshot(context, error_log: ErrorLogResource, label: str, reading) -> pl.DataFrame:
    """The table as read for this drop (`reading`: the future of `_table`; the crosswalk and links of a drop are
    judged against this snapshot). A table that is missing or unreadable is recorded (when the error log is
    reachable) and fails the step in one line."""
    frame = reading.result()
    if isinstance(frame, SourceTableError):
        try:
            error_log.record(context, context.partition_key, [ErrorRecord("source", "source_table", str(frame),
                                                                          label)])
        except Exception:  # noqa: BLE001 - the warehouse itself is out of reach: the failure message says it all
            pass
        raise dg.Failure(f"refused: {frame}") from None
    return frame


def _finish(context, error_log: ErrorLogResource, district: District, validated: ValidatedFile,
            errors: list, output_name: str) -> dg.Output[ValidatedFile]:
    error_log.record(context, context.partition_key, errors)
    if validated.halted and validated.file_name:
        error_log.mark_files(context, "halted", [validated.file_name, *validated.parts])
    return dg.Output(validated, output_name=output_name,
                     metadata=_metadata(district, validated) if validated.sent else {"sent": False})


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


source_assets = [read_drop]
