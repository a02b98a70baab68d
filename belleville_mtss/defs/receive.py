"""Receive: the received drop, its files hashed and encrypted into staging (lib/receive/)."""
import dataclasses

import dagster as dg

from ..lib.faults import fault_point
from ..lib.load.errors import ErrorRecord
from ..lib.load.warehouse import received_before, record_received
from ..lib.read.ingest import drop_files
from ..lib.receive.drops import DropRefused, DropUnreachable, ReceivedDrop, receive_or_replay
from ..lib.receive.sftp import SftpFatal, SftpTransient
from ..lib.receive.untrusted import without_accounts
from .alerting import VERSION_TAG
from .metadata import OWNERS
from .recovery import claim, recover
from .partitions import drops
from .resources import DropServerResource, ErrorLogResource


@dg.asset(group_name="sources", partitions_def=drops, kinds={"sftp"}, owners=OWNERS,
          description="The drop's files, hashed and encrypted into local staging as they arrive (checksums in "
                      "dm.IngestionFiles), replayable")
def received_drop(context: dg.AssetExecutionContext, drop_server: DropServerResource, error_log: ErrorLogResource,
                  ) -> dg.Output[ReceivedDrop]:
    drop = error_log.drop(context)
    key, district = drop.name, drop.district
    fault_point("before_claim")
    claim(context, district.district)
    recover(context, error_log, district)  # the district's runs that died, settled
    audit = {}

    def published(version: str, files: list) -> None:  # recorded as it is published: the audit in publish order
        audit["found"] = drop_files(district, files)  # a drop refused for its files is no receipt
        audit["arrived"] = not received_before(error_log.engine(), key, version)  # this version's first receipt
        audit["earlier"] = record_received(error_log.engine(), key, district.account_info_id, version, files,
                                           context.run.run_id)

    try:
        received = receive_or_replay(drop_server.source(), drop.key.district, district.drop_folder, drop.key.drop,
                                     drop_server.staging(drop.key), drop_server.vault_key(), drop_server.limits(),
                                     transient=(SftpTransient,), requested=context.run.tags.get(VERSION_TAG),
                                     published=published)
        found = audit["found"]
    except DropRefused as exc:
        error_log.record(context, key, [ErrorRecord("receive", exc.reason, exc.message, exc.file_name)])
        raise dg.Failure(f"refused: {exc.message}") from None
    except (DropUnreachable, SftpTransient) as exc:
        # the server did not answer: a failed transfer, which the drop sensor asks for again once it does
        error_log.record(context, key, [ErrorRecord("receive", "transfer_failed", without_accounts(str(exc)))])
        raise dg.Failure(str(exc)) from None
    except LookupError as exc:  # on neither the server nor staged: a drop withdrawn after it was requested
        error_log.record(context, key, [ErrorRecord("receive", "drop_not_found", without_accounts(str(exc)))])
        raise dg.Failure(str(exc)) from None
    except SftpFatal as exc:  # credentials or host key refused: a person's to fix
        error_log.record(context, key, [ErrorRecord("receive", "server_refused", without_accounts(str(exc)))])
        raise dg.Failure(str(exc)) from None
    except OSError as exc:  # staging not written (a full disk, a permission), a file not read: the drop stays put
        message = f"receiving the drop failed: {type(exc).__name__}: {exc.strerror or exc}"
        error_log.record(context, key, [ErrorRecord("receive", "receive_failed", without_accounts(message))])
        raise dg.Failure(message) from None
    arrived, earlier = audit["arrived"], audit["earlier"]
    # a file of the drop no source the district sends claims (a source its registry entry does not list, a stray
    # file): decided now, never left `received`
    claimed = {f.name for files in found.values() for f in files}
    unexpected = [f.name for f in received.files if f.name not in claimed]
    if unexpected:
        error_log.mark_files(context, "not_expected", unexpected)
    context.resources.io_manager.forget_older_version(key, received)
    received = dataclasses.replace(received, run_id=context.run.run_id)
    return dg.Output(received, metadata={
        "drop": key, "version": received.version, "replayed_from_staging": received.replayed,
        "first_receipt_of_version": arrived,
        # what dm.GateAcceptances.DropVersion holds for an acceptance of these bytes
        "content_version": received.content_version,
        "not_expected": ", ".join(unexpected),
        "files": dg.MetadataValue.md("| file | bytes | sha256 | same bytes as |\n|---|---|---|---|\n" + "\n".join(
            f"| {f.name} | {f.size} | {f.sha256[:16]}… | {earlier[f.name] or '(new)'} |" for f in received.files)),
    })


source_assets = [received_drop]
