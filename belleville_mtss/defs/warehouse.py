"""Loads into the EDU Data Warehouse: a drop's roster and results in one step and one transaction, after the
order of drops says it is not older than what the warehouse holds (lib/load/order.py)."""
import dagster as dg
import polars as pl
import sqlalchemy as sa

from ..lib import checks, pipeline
from ..lib.columns import RESULTS_TABLE, ROSTER_TABLE, lineage, lineage_markdown
from ..lib.load.errors import ErrorRecord
from ..lib.load.lock import DistrictBusy, district_lock
from ..lib.load.verify import load_failure
from ..lib.load.warehouse import assessment_results as results_table
from ..lib.faults import InjectedFault, fault_point
from ..lib.load.warehouse import (apply_results, apply_roster, clear_district_staging, load_figures, mark_files,
                                  receipt_of, refused as refused_load, results_scopes, staged, sweep_staging)
from ..lib.load.warehouse import student_roster as student_roster_table
from ..lib.read.ingest import drop_files
from ..lib.sources import ASSESSMENT_FILES, ROSTER_FILES, SOURCE_OF
from ..lib.receive.drops import ReceivedDrop
from ..lib.students import gates
from .district import GATED, accepted_result, accepting, blocked_failure, check_specs, verdict
from ..report import LOCK_WAIT, REFUSED_BY, SUPERSEDED_IN_PART
from .metadata import OWNERS, table
from .partitions import drops
from .resources import ErrorLogResource, WarehouseResource

ROSTER, RESULTS = dg.AssetKey("dm_student_roster"), dg.AssetKey("dm_assessment_results")
REPLACE_CHECKS = [c.name for c in checks.of_stage("replace")]
SPECS = [
    dg.AssetSpec(ROSTER, group_name="warehouse", kinds={"sql"}, automation_condition=GATED, owners=OWNERS,
                 deps=["student_roster", "district_crosswalk", "received_drop"], partitions_def=drops,
                 description="dm.StudentRoster: the district's roster becomes the drop's; a student it no longer "
                             "lists stays, not current"),
    dg.AssetSpec(RESULTS, group_name="warehouse", kinds={"sql"}, automation_condition=GATED, owners=OWNERS,
                 deps=["assessment_results", "district_crosswalk"], partitions_def=drops,
                 description="dm.AssessmentResults: each (assessment, subject, school year; MAP Growth's by term) of "
                             "the drop replaced, its scores beyond the common columns (dm.AssessmentScores) with it"),
]


def _files(crosswalk: pl.DataFrame, kinds, claimed: dict[str, tuple]) -> list[str]:
    """The drop's files that fed a load, each with the files read with it (`claimed`: lib/read/ingest.py drop_files)."""
    fed = crosswalk.filter(pl.col("source").is_in([k.asset for k in kinds]) & pl.col("file_name").is_not_null())
    return sorted({*fed["file_name"], *(f.name for asset in fed["source"] for f in claimed.get(asset, ()))})


def _in_scopes(kinds, scopes: list) -> list:
    """The kinds of file any of whose results fall in `scopes` (a kind's results are its source's assessment, of its
    own subject where its file name says one)."""
    def holds(kind, scope) -> bool:
        source = SOURCE_OF[kind.asset]
        return scope[0] == (source.assessment or source.name) and kind.subject in (None, scope[1])
    return [k for k in kinds if any(holds(k, s) for s in scopes)]


def _stopped(context, error_log: ErrorLogResource, reason: str, message: str) -> None:
    """A load that wrote nothing: its error row, and its files' audit rows decided ("failed"), never left received.
    Where the warehouse refuses these too (the fault may be the audit's own), the run's failure still says why."""
    try:
        error_log.record(context, context.partition_key, [ErrorRecord("load", reason, message)])
        error_log.mark_files(context, "failed")
    except sa.exc.SQLAlchemyError as exc:
        context.log.warning(f"the load's failure could not be recorded in the warehouse ({type(exc).__name__})")


def _load_checks(context, error_log: ErrorLogResource, engine, table: sa.Table, asset: dg.AssetKey,
                 account_info_id: int, frame: pl.DataFrame, scopes=None):
    """The load's checks, read back from the table: a failure is logged (the rows stay: the load committed)."""
    name, frame_rows = f"{table.schema}.{table.name}", frame.height
    figures = load_figures(engine, table, account_info_id, context.partition_key, scopes)
    for outcome in checks.load_checks(name, frame_rows, figures, account_info_id):
        error_log.record(context, context.partition_key, outcome.records)
        yield dg.AssetCheckResult(check_name=outcome.name, asset_key=asset, passed=outcome.passed,
                                  severity=dg.AssetCheckSeverity.ERROR, metadata={"why": outcome.why, **figures})


def _apply(context, conn: sa.Connection, engine: sa.Engine, district, key: str, received: ReceivedDrop,
           roster: pl.DataFrame | None, results: pl.DataFrame | None, result_scopes: list, fed: dict[str, list[str]],
           written: dict, load_id: str, max_days_ahead: int):
    """In the apply's transaction: the replace checks against what the warehouse holds, then (when none refused,
    or a person accepted them) the roster, the results and their audit rows (`fed`: the files of each; those of
    "superseded", left to a newer drop, marked so). Returns the outcomes and the refused."""
    tags, run_id, version = context.run.tags, context.run.run_id, received.acceptance_keys
    receipt = {f.name: f.sha256 for f in received.files}
    outcomes = checks.decide("replace", pipeline.replace_evidence(
        conn, district, key, roster, results, result_scopes, max_days_ahead, receipt))
    fault_point("in_apply")  # the transaction open (it has read what the warehouse holds), nothing written yet
    failed = [o for o in outcomes if not o.passed]
    earlier = {o.name: gates.acceptance(engine, key, version, o.name, o.figure) for o in failed}
    now = accepting(context) if failed else set()  # read once: a re-executed run's parent is looked up
    refused = [o for o in failed if not checks.CATALOGUE[o.name].acceptable
               or not earlier[o.name] and o.name not in now]
    if refused:
        return outcomes, refused
    for o in failed:
        if not earlier[o.name]:  # accepted now: recorded with the load it allows (none refused: each acceptable)
            gates.accept(conn, key, version[0], o.name, tags["mtss/accept_reason"],
                         tags.get("mtss/accepted_by", "unknown"), o.figure or o.why, run_id)
    # its receipt is what a run re-executed from the UI, or a subset run, loads (kept by an earlier release: found
    # by its bytes)
    before = received.run_id or receipt_of(conn, key, receipt)
    if fed.get("superseded"):
        mark_files(conn, key, run_id, "superseded", fed["superseded"], before)
    if roster is not None:
        written[ROSTER] = apply_roster(conn, district.account_info_id, load_id)
        mark_files(conn, key, run_id, "loaded", fed["roster"], before)
    if results is not None:
        written[RESULTS] = apply_results(conn, district.account_info_id, load_id, result_scopes)
        mark_files(conn, key, run_id, "loaded", fed["results"], before)
    return outcomes, refused


@dg.multi_asset(
    name="warehouse_load", specs=SPECS, partitions_def=drops, can_subset=True,
    ins={"student_roster": dg.AssetIn("student_roster"), "assessment_results": dg.AssetIn("assessment_results"),
         "district_crosswalk": dg.AssetIn("district_crosswalk"), "received_drop": dg.AssetIn("received_drop")},
    check_specs=[*check_specs("replace", ROSTER.to_user_string()), *check_specs("load", ROSTER.to_user_string()),
                 *check_specs("load", RESULTS.to_user_string())],
)
def warehouse_load(context: dg.AssetExecutionContext, warehouse: WarehouseResource, error_log: ErrorLogResource,
                   student_roster: pl.DataFrame, assessment_results: pl.DataFrame, district_crosswalk: pl.DataFrame,
                   received_drop: ReceivedDrop):
    """The drop's roster and results, in one transaction with their audit rows, once the replace checks (lib/checks.py)
    pass or a person accepted them for this drop version."""
    # acceptances are of these bytes: recorded under the content version, found under it or (older ones) the version
    district, key, version = error_log.drop(context).district, context.partition_key, received_drop.acceptance_keys
    selected = context.selected_asset_keys
    roster = student_roster if ROSTER in selected else None
    results = assessment_results if RESULTS in selected else None
    result_scopes = results_scopes(results) if results is not None else []
    claimed = drop_files(district, received_drop.files)
    fed = {"roster": _files(district_crosswalk, ROSTER_FILES, claimed),
           "results": _files(district_crosswalk, ASSESSMENT_FILES, claimed)}  # the files each load marks loaded
    stale = (pipeline.made_under_another_id(district, district_crosswalk, roster, results)
             or pipeline.read_under_another_entry(district, district_crosswalk))
    if stale:
        _stopped(context, error_log, "stale_frames", stale)
        raise dg.Failure(stale)
    engine = warehouse.engine()
    written: dict[dg.AssetKey, int] = {}
    waited, committed, interrupted = 0.0, False, None
    holds = None  # what newer drops hold of this one's, where they hold a part of it
    graph = lineage(district)  # made before the load: once it commits, nothing stands before saying what it wrote
    try:
        # The rows are bulk-copied into staging first, outside the transaction; then one short transaction reads
        # what the warehouse holds and, if the checks allow, applies the roster, the results and their audit. The
        # district's lock is the session's that runs that transaction: losing one aborts the other.
        sweep_staging(engine, warehouse.staging_sweep_hours)  # what a load killed long ago left behind
        fault_point("before_district_lock")
        with (engine.connect() as conn,
              district_lock(engine, district.account_info_id, warehouse.load_lock_wait_seconds, conn) as waited):
            clear_district_staging(engine, district.account_info_id)  # the lock held: a dead load's rows, if any
            # a person accepting drop_is_newest for this version now, or who accepted it against the newer drops
            # holding now, makes the whole drop the district's
            if "drop_is_newest" not in accepting(context):
                with conn.begin():  # read under the lock: no other load of the district commits before the apply
                    holds = pipeline.superseded_in_part(conn, district, key, roster, results,
                                                        error_log.registry.max_days_ahead)
                if holds.skipped and not gates.acceptance(engine, key, version, "drop_is_newest", holds.newer):
                    # the files of what is left to newer drops: the roster export, and each file none of whose
                    # results are kept
                    left = [k for k in (_in_scopes(ASSESSMENT_FILES, result_scopes) if holds.results is not None
                                        else ASSESSMENT_FILES if results is not None else ())
                            if k not in _in_scopes(ASSESSMENT_FILES, holds.result_scopes)]
                    fed = {"superseded": [*(fed["roster"] if roster is not None and holds.roster is None else []),
                                          *_files(district_crosswalk, left, claimed)],
                           "roster": fed["roster"] if holds.roster is not None else [],
                           "results": _files(district_crosswalk, [k for k in ASSESSMENT_FILES if k not in left],
                                             claimed)}
                    roster, results, result_scopes = holds.roster, holds.results, holds.result_scopes
                else:
                    holds = None
            with staged(engine, roster, results) as load_id:
                with conn.begin():
                    outcomes, refused = _apply(context, conn, engine, district, key, received_drop, roster, results,
                                               result_scopes, fed, written, load_id,
                                               error_log.registry.max_days_ahead)
                committed = True
                fault_point("after_commit")
    except DistrictBusy as exc:
        _stopped(context, error_log, "district_busy", str(exc))
        raise dg.Failure(str(exc)) from None
    except (sa.exc.DBAPIError, InjectedFault) as exc:
        if not committed:
            message = load_failure(engine, refused_load("the load", exc))
            _stopped(context, error_log, "load_failed", message)
            raise dg.Failure(message) from None
        # what the warehouse holds is the load's: say so; its staged rows go with the district's next load
        context.log.warning(f"the load committed; removing its staged rows afterwards failed ({type(exc).__name__}): "
                            "the district's next load removes them")
    except dg.DagsterExecutionInterruptedError as exc:  # SIGTERM (a stop, a restart), or a cancel from the UI
        if not committed:
            raise
        # the load stands: what it wrote is said below, then the run stops, as it was asked to
        context.log.warning("the load committed, then the run was interrupted: the district's next load removes its "
                            "staged rows")
        interrupted = exc
    # what the load wrote is said first: a run stopped from here on (SIGTERM, a cancel) has said it
    for asset, columns, node in ((ROSTER, ROSTER_TABLE, "dm_student_roster"),
                                 (RESULTS, RESULTS_TABLE, "dm_assessment_results")):
        if asset in written:
            yield dg.MaterializeResult(asset_key=asset, metadata={
                **table(written[asset], columns, graph[node]), "rows_written": written[asset],
                "lineage": dg.MetadataValue.md(lineage_markdown(district, node))})
    if holds is not None and written:  # loaded in part: what was left to newer drops, said before anything else
        note = holds.note
        context.log.warning(f"{key}: superseded in part: {note}; the rest of the drop loaded")
        yield dg.AssetObservation(asset_key=ROSTER, metadata={SUPERSEDED_IN_PART: note})
        for asset in (ROSTER, RESULTS):
            if asset not in written and asset in selected:  # left whole to a newer drop: nothing of it written
                yield dg.MaterializeResult(asset_key=asset, metadata={"rows_written": 0, SUPERSEDED_IN_PART: holds.why})
                for name in checks.LOAD_CHECKS:
                    yield dg.AssetCheckResult(check_name=name, asset_key=asset, passed=True,
                                              metadata={"why": f"nothing written: {holds.why}"})
        error_log.record(context, key, [ErrorRecord("replace", "superseded_in_part", f"{key}: {note}; the rest of "
                                                    "the drop was loaded (what no newer drop holds)")])
    if interrupted is not None:
        raise interrupted
    if waited >= 1:  # the run report says so (report.py)
        yield dg.AssetObservation(asset_key=ROSTER, metadata={LOCK_WAIT: round(waited, 1)})
    # a refusal is logged and its files marked whatever the selection; its checks are shown where selected (a load
    # of the results alone has none)
    shown = dg.AssetCheckKey(ROSTER, REPLACE_CHECKS[0]) in context.selected_asset_check_keys
    for o in outcomes:
        if o in refused:
            result = verdict(context, error_log, ROSTER.to_user_string(), o)
        elif o.passed:
            result = dg.AssetCheckResult(check_name=o.name, asset_key=ROSTER, passed=True, metadata={"why": o.why})
        else:
            result = accepted_result(o, ROSTER, gates.acceptance(engine, key, version, o.name, o.figure))
        if shown:
            yield result
    if refused:
        # the refusing check named on the failure too: a load of the results alone shows no replace check, and its
        # run is superseded or blocked, not failed (report.py)
        named = {REFUSED_BY: refused[0].name, "why": refused[0].why}
        if checks.stopped_as(o.name for o in refused) == "superseded":
            raise blocked_failure(f"Superseded: {key}: {refused[0].why}. "
                                  + checks.CATALOGUE[refused[0].name].remedy_for(district, key), **named)
        raise blocked_failure(pipeline.blocked_summary(district, key, refused), **named)
    if roster is not None:
        yield from _load_checks(context, error_log, engine, student_roster_table, ROSTER, district.account_info_id,
                                roster)
    if results is not None:
        yield from _load_checks(context, error_log, engine, results_table, RESULTS, district.account_info_id,
                                results, result_scopes)


warehouse_assets = [warehouse_load]
