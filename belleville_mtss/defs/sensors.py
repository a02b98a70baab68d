"""sftp_drop_sensor: each complete new drop (or new version of one) becomes a partition and one run. It also
watches the drop server: unreachable past MTSS_ALERT_OUTAGE_MINUTES, one alert, and its ticks fail until it answers."""
import datetime as dt
import hashlib
import json
import re
import time

import dagster as dg

from ..lib.alerts import track_outage, track_sensor_failure
from ..lib.receive.drops import CHANGED, plan_runs
from ..lib.load.errors import ErrorRecord, refusals
from ..lib.load.order import date_in_name
from ..lib.receive.sftp import SftpTransient
from .alerting import VERSION_TAG, store, stored
from .assets import drop_assets, drop_tags
from .jobs import drop_job
from .partitions import drops as drop_partitions
from .resources import AlertResource, DropServerResource, ErrorLogResource, RegistryResource

OUTAGE = "mtss/alerts/drop_server_outage"  # {"down_since": epoch, "alerted": bool} while the server is down
FAILING = "mtss/alerts/sftp_drop_sensor_failing"  # {"failing_since": epoch} while its ticks fail
TRANSFER = "transfer_failed"
RECEIPT_RETRIES = 3  # a drop whose files kept changing while received is requested again at most this often
# a drop whose transfer failed (the server went down mid-file) is requested again at most this often, each time
# no sooner than TRANSFER_BACKOFF_S x 2^(n-1) after its n-th refusal
TRANSFER_RETRIES = 8
TRANSFER_BACKOFF_S = 60.0
RETRIES = {CHANGED: RECEIPT_RETRIES, TRANSFER: TRANSFER_RETRIES}


def _last_receipt(instance: dg.DagsterInstance, key: str) -> tuple[str, float] | None:
    """The version of the drop last received, by any run (the sensor's, `belleville-mtss run` or `demo`, a launch
    from the UI), and when."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("received_drop"), asset_partitions=[key]), limit=1).records
    return (records[0].asset_materialization.metadata["version"].value, records[0].timestamp) if records else None


def _received(instance: dg.DagsterInstance, key: str, version: str) -> bool:
    """This version of the drop was the last received: it is not run again."""
    last = _last_receipt(instance, key)
    return last is not None and last[0] == version


SENT = "mtss/sent/"  # + drop key -> the version of it last run, in the instance's key-value table


def sent_versions(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    """The version last run of each listed drop (one query): kept in a table, not in the cursor, so it holds every
    drop ever run, whatever their number or file times."""
    stored_values = instance.run_storage.get_cursor_values({SENT + k for k in keys}) if keys else {}
    return {k[len(SENT):]: v for k, v in stored_values.items()}


def _ran(instance: dg.DagsterInstance, key: str, version: str) -> bool:
    """This version is the drop's last: requested by the sensor since the drop was last received (its run queued,
    under way or ended without receiving it), or else the last received: from now on the table remembers it. A
    version run before and replaced since (a correction withdrawn: the first files put back with their times) is
    not: it runs again."""
    receipt = _last_receipt(instance, key)
    runs = instance.get_run_records(dg.RunsFilter(tags={"mtss/drop": key}), limit=1)
    if runs and (receipt is None or runs[0].create_timestamp.timestamp() > receipt[1]):
        last = runs[0].dagster_run.tags.get(VERSION_TAG)
    else:
        last = receipt[0] if receipt else None
    if last == version:
        instance.run_storage.set_cursor_values({SENT + key: version})
        return True
    return False


def _run_key(instance: dg.DagsterInstance, key: str, version: str) -> str:
    """A run request's key: the drop and version, and, for a version run before (sent again after another), how many
    times it was (Dagster never runs a key twice)."""
    before = instance.get_runs_count(dg.RunsFilter(tags={"mtss/drop": key, VERSION_TAG: version}))
    return f"{key}@{version}" + (f"~{before}" if before else "")


def _settle_requested(instance: dg.DagsterInstance, cursor: dict) -> None:
    """Drops requested at earlier ticks whose run now exists move from the cursor to the table (one query each,
    once: at the tick after their request)."""
    cursor["requested"] = {k: v for k, v in cursor.get("requested", {}).items() if not _ran(instance, k, v)}


class DropServerUnreachable(Exception):
    """The drop server has not answered for longer than MTSS_ALERT_OUTAGE_MINUTES: the tick fails (red in the UI)
    with this as its error, until a tick reaches the server again."""


def _receive_again(instance, error_log: ErrorLogResource, found: list, ready: list, cursor: dict) -> list:
    """Drops refused `changed_during_receipt` or `transfer_failed` and not received since (a rewrite in place that
    kept size and mtime, or a server that went down mid-transfer, leaves the drop's version as it was, so the plan
    would never run it again): each refusal earns one more request (a run key of its own), RETRIES at most for each
    version of the drop, after a failed transfer once its backoff has passed. The cursor keeps, per drop and reason,
    the version, the refusals counted before it was first seen, and the last refusal answered."""
    listed = [d for d in found if not d.refused_at_listing]
    candidates = [d for d in listed if d not in ready]
    retried, again = cursor.setdefault("retried", {}), []
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for reason, most in RETRIES.items():
        counts = refusals(error_log.engine(), (reason,), [d.key for d in listed])
        for d in listed:
            total, last = counts.get(d.key, (0, None))
            seen = d.key if reason == CHANGED else f"{TRANSFER}|{d.key}"
            version, before, answered = _retries(retried.get(seen), d.version, total)
            if total:
                retried[seen] = [version, before, answered]
            n = total - before  # this version's refusals
            due = reason == CHANGED or last is None or \
                (now - last).total_seconds() >= TRANSFER_BACKOFF_S * 2 ** (n - 1)
            if d in candidates and n > answered and n <= most and due \
                    and not _received(instance, d.key, d.version) and all(d is not a for a, _ in again):
                again.append((d, f"#again{n}" if reason == CHANGED else f"#transfer{n}"))
                retried[seen] = [version, before, n]
    keys = {d.key for d in listed}  # a refused name has no key
    cursor["retried"] = {k: v for k, v in retried.items() if k.rpartition("|")[2] in keys}
    return again


def _retries(kept, version: str, total: int) -> list:
    """[version, refusals before it, last refusal answered] for a drop and reason. A new version starts at what was
    counted when it was first seen (its own run cannot have been refused yet); a count kept before versions were
    (a number) is the listed version's."""
    if kept is None or isinstance(kept, int):
        return [version, 0, kept or 0]
    return kept if kept[0] == version else [version, total, 0]


def _unreachable(context, drop_server: DropServerResource, alerting: AlertResource, exc: SftpTransient) -> dg.SkipReason:
    minutes, now = alerting.config().outage_minutes, time.time()
    alert, state = track_outage(stored(context.instance, OUTAGE, {}), False, now, drop_server.server(), minutes)
    store(context.instance, OUTAGE, state)  # before sending: a crash after it loses an alert, never repeats one
    if alert:
        alerting.send(context.log, [alert])
    down = (now - state["down_since"]) / 60
    if not state["alerted"]:
        return dg.SkipReason(f"drop server unreachable for {down:.1f} min, will retry (alert after {minutes:g} min): "
                             f"{exc}")
    raise DropServerUnreachable(f"drop server unreachable for {down:.1f} min, longer than MTSS_ALERT_OUTAGE_MINUTES "
                                f"({minutes:g}); alert sent; retried at every tick: {exc}") from None


def _reachable(context, drop_server: DropServerResource, alerting: AlertResource) -> None:
    state = stored(context.instance, OUTAGE, {})
    if state:  # the first good tick after an outage clears it, and says so if the outage was alerted
        alert, _ = track_outage(state, True, time.time(), drop_server.server(), alerting.config().outage_minutes)
        store(context.instance, OUTAGE, {})
        alerting.send(context.log, [alert] if alert else [])


def make_sftp_drop_sensor(interval: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name="sftp_drop_sensor", job=drop_job, minimum_interval_seconds=interval,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Looks for complete new drops of every registry district on the drop server")
    def sftp_drop_sensor(context: dg.SensorEvaluationContext, registry: RegistryResource,
                         drop_server: DropServerResource, error_log: ErrorLogResource,
                         alerting: AlertResource) -> dg.SensorResult | dg.SkipReason:
        try:
            result = _look_for_drops(context, registry, drop_server, error_log, alerting)
        except DropServerUnreachable:
            raise  # alerted as an outage
        except Exception as exc:
            # the first line only, and hosts without their user (user@host): alert texts refuse a stray '@'
            first = re.sub(r"[^\s@]+@", "", (str(exc).splitlines() or [""])[0])
            _track_failure(context, alerting, f"{type(exc).__name__}: {first}")
            raise
        _track_failure(context, alerting, None)
        return result

    return sftp_drop_sensor


def _track_failure(context, alerting: AlertResource, error: str | None) -> None:
    state = stored(context.instance, FAILING, {})
    if not state and error is None:
        return  # the usual good tick: one read, no write
    alert, state = track_sensor_failure(state, error, time.time(), "sftp_drop_sensor")
    store(context.instance, FAILING, state)  # before sending, as for outages: at worst one alert lost, none repeated
    alerting.send(context.log, [alert] if alert else [])


def _refusal_key(where: str, reason: str) -> str:
    """A refusal as the cursor remembers it: a digest of the name as listed, which may be a person's address (shown
    nowhere), and two such names stay apart."""
    return f"{hashlib.sha256(where.encode()).hexdigest()[:16]}|{reason}"


def _look_for_drops(context: dg.SensorEvaluationContext, registry: RegistryResource, drop_server: DropServerResource,
                    error_log: ErrorLogResource, alerting: AlertResource) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    source = drop_server.source()
    found, refusals = [], []
    registry = registry.registry()
    # A broken entry stops only its own district: it is logged (once per message), and its drops, where its
    # file still names their folder, run and fail at their first step with the entry's problem.
    folders = {e.district: e.drop_folder for e in registry.values()}
    for problem in registry.problems.values():
        refusals.append((f"{problem.district}/", problem.message,
                         ErrorRecord("registry", "registry_entry", problem.message, problem.file)))
        if problem.drop_folder:
            folders[problem.district] = problem.drop_folder
    try:
        found, refused = source.list_districts(folders)
        refusals += [(f"{district}/", exc.message, ErrorRecord("receive", exc.reason, exc.message))
                     for district, exc in refused.items()]
    except SftpTransient as exc:
        # The server is down or the network hiccupped: try again at the next tick (past the outage window, the tick
        # fails). Authentication and host-key failures (SftpFatal) are not caught: they fail the tick at once, so a
        # rotated credential shows.
        return _unreachable(context, drop_server, alerting, exc)
    _reachable(context, drop_server, alerting)
    # A drop refused as listed (its name, a folder that cannot be listed) never becomes a partition: it is
    # logged once per version, shown escaped.
    refusals += [(f"{d.district}/{d.name}", d.version, ErrorRecord("receive", *d.problem))
                 for d in found if d.refused_at_listing]
    logged = cursor.get("refused", {})
    seen = {_refusal_key(where, record.reason): version for where, version, record in refusals}
    for where, version, record in refusals:
        if logged.get(_refusal_key(where, record.reason)) != version:
            error_log.record(context, where, [record])
    _settle_requested(context.instance, cursor)
    listed = [d.key for d in found if not d.refused_at_listing]
    formats = {e.district: e.drop_date for e in registry.values()}
    ready, next_cursor = plan_runs(found, cursor, time.time(), sent_versions(context.instance, listed),
                                   dated=lambda d: date_in_name(d.name, formats[d.district])
                                   if d.district in formats else None)
    ready = [d for d in ready if not _ran(context.instance, d.key, d.version)]
    again = _receive_again(context.instance, error_log, found, ready, next_cursor)
    next_cursor["refused"] = seen
    if not ready and not again:
        pending = len(next_cursor["pending"])
        return dg.SensorResult(skip_reason=f"no complete new drop on {source.describe()}"
                               f"{f' ({pending} still arriving)' if pending else ''}"
                               f"{f'; {len(refusals)} refused, see dm.IngestionErrors' if refusals else ''}",
                               cursor=json.dumps(next_cursor))
    known = set(context.instance.get_dynamic_partitions(drop_partitions.name))
    districts = {d.district for d in ready} | {d.district for d, _ in again}
    asked = {e: (drop_assets(registry.get(e)), drop_tags(registry.get(e))) for e in districts}
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=d.key, run_key=run_key, asset_selection=asked[d.district][0],
                                    tags={"mtss/district": d.district, "mtss/drop": d.key,
                                          VERSION_TAG: d.version, **asked[d.district][1]})
                      for d, run_key in [(d, _run_key(context.instance, d.key, d.version)) for d in ready]
                      + [(d, f"{d.key}@{d.version}{suffix}") for d, suffix in again]],
        dynamic_partitions_requests=[drop_partitions.build_add_request(sorted({d.key for d in ready} - known))],
        cursor=json.dumps(next_cursor),
    )


sftp_drop_sensor = make_sftp_drop_sensor()
