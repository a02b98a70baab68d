"""District: the crosswalk of every file's district name, with the district checks of lib/checks.py (lib/district/).
The shared pieces of every checked asset (check specs from the catalogue, a verdict, a blocked step) live here."""
import datetime as dt

import dagster as dg
import polars as pl

from ..lib import checks, pipeline
from ..lib.columns import CROSSWALK_FRAME
from ..lib.district.crosswalk import listed_names
from ..lib.district.registry import District
from ..lib.load.errors import ErrorRecord
from ..lib.load.warehouse import under_other_ids
from ..lib.sources import ASSESSMENT_FILES, DIRECTORY, FILES, ROSTER_FILES, SOURCE_OF
from ..lib.read.ingest import ValidatedFile
from .metadata import OWNERS, md_table, table
from .partitions import drops
from .recovery import parent_of
from .resources import ErrorLogResource, RegistryResource, WarehouseResource


# The validated frames a stage works on, as dependencies: a step loads the frames of the files its district sends
# (`frames_of`), and a run leaves out the kinds of file the district does not send (defs/assets.py), so a kind no
# district of the run sends costs it no step output, input or event.
ASSESSMENT_DEPS = [dg.AssetKey(k.validated) for k in ASSESSMENT_FILES]
ROSTER_DEPS = [dg.AssetKey(k.validated) for k in ROSTER_FILES]  # a district sends one roster: its registry's
# The frames built on the district checks' verdict, then on the gates': what a refusal of either leaves no earlier
# run's copy of (a later run of the load alone would load it)
BUILT_ON_VERDICT = ("district_crosswalk", "student_identity_map", "student_roster", "assessment_results")
# Held until the drop's blocking checks pass, in this run and in automated later runs. No validated frame of a file
# counts as a missing dependency: those of the kinds a district does not send are never made for its drops
# (defs/assets.py), and one it sends that a step does not find fails that step, saying so (`frames_of`).
FRAMES_NEVER_MISSING = dg.AutomationCondition.any_deps_missing().ignore(
    dg.AssetSelection.assets(*(k.validated for k in FILES)))
GATED = (dg.AutomationCondition.eager().replace("any_deps_missing", FRAMES_NEVER_MISSING)
         & dg.AutomationCondition.all_deps_blocking_checks_passed())

# On a run of a district's drop: the kinds of file (file assets) its entry listed when the run was asked for, the
# ones the run reads (defs/assets.py; a re-execution copies it, with the frames its parent read)
FILES_TAG = "mtss/files"


def frames_of(context, kinds, district: District) -> dict[str, ValidatedFile]:
    """The validated file of each of `kinds` for this drop, by file asset: this run's, or kept at rest by an earlier
    one (each checked as an input is). A kind the district does not send is not sent. Refused, failing the step: a
    kind the entry lists that the run was not asked to read (its FILES_TAG), and a frame kept of a kind the entry
    no longer lists (read under an entry that did: a re-execution, or assets run a few at a time, after the
    registry changed), which is logged and leaves nothing built on it."""
    io, drop, step = context.resources.io_manager, context.partition_key, context.get_step_execution_context()
    asked = context.run.tags.get(FILES_TAG)
    files = {}
    for k in kinds:
        if asked is not None and k.asset in district.file_patterns and k.asset not in asked.split(","):
            # the entry listed it after the run was asked for: a frame kept of it is no read of this run's
            raise dg.Failure(f"{district.district}'s registry entry lists {k.asset}, which it did not when this run "
                             f"of {drop} was asked for, so the run did not read it: materialize the whole drop again")
        if io.kept(k.validated, drop):
            files[k.asset] = io.load_asset(step, k.validated, drop)
        elif k.asset in district.file_patterns:
            raise dg.Failure(f"{k.validated} of {drop} was neither read by this run nor kept by an earlier one, and "
                             f"{district.district}'s registry entry lists it (since the run was requested, or its "
                             f"frame was purged): materialize the whole drop again")
        else:
            files[k.asset] = ValidatedFile(k.asset, None, sent=False)
    unlisted = sorted(v.file_name or f"{asset} (no file)" for asset, v in files.items()
                      if v.sent and asset not in district.file_patterns)  # a file missing from the drop: no name
    if unlisted:
        message = (f"{drop}: {', '.join(unlisted)} was read under a registry entry that listed its source, and "
                   f"{district.district}'s entry no longer does: materialize the whole drop again")
        io.forget(drop, *BUILT_ON_VERDICT)  # first: whether or not the error log is reachable
        context.resources.error_log.record(context, drop, [ErrorRecord("district", "stale_frames", message)])
        raise dg.Failure(f"refused: {message}")
    return files


def assessments_of(files: dict) -> list[ValidatedFile]:
    return [files[k.asset] for k in ASSESSMENT_FILES]


def check_specs(stage: checks.Stage, asset: str, **kwargs) -> list[dg.AssetCheckSpec]:
    """The catalogue's checks of a stage (lib/checks.py) as blocking check specs of `asset`, per drop."""
    return [dg.AssetCheckSpec(c.name, asset=asset, blocking=stage != "load", description=c.description,
                              partitions_def=drops, **kwargs) for c in checks.of_stage(stage)]


def verdict(context, error_log: ErrorLogResource, asset: str, outcome: checks.CheckOutcome,
             **metadata) -> dg.AssetCheckResult:
    """A blocking check's result; a failure writes its error rows and marks the drop's files with what the drop is
    then (blocked, or superseded: the check's outcome)."""
    error_log.record(context, context.partition_key, outcome.records)
    if not outcome.passed:
        error_log.mark_files(context, checks.CATALOGUE[outcome.name].outcome)
    return dg.AssetCheckResult(check_name=outcome.name, asset_key=asset, passed=outcome.passed,
                               severity=dg.AssetCheckSeverity.ERROR, metadata={"why": outcome.why, **metadata})


def accepted_result(outcome: checks.CheckOutcome, asset_key, accepted: dict, **metadata) -> dg.AssetCheckResult:
    """A failed check a person accepted for this drop version (dm.GateAcceptances): passed, saying who and why."""
    return dg.AssetCheckResult(check_name=outcome.name, asset_key=asset_key, passed=True, metadata={
        **metadata, "why": outcome.figure or outcome.why, "accepted_by": accepted["AcceptedBy"],
        "accepted_reason": accepted["Reason"], "accepted_at": accepted["AcceptedAt"].isoformat(timespec="seconds")})


ACCEPT_TAGS = ("mtss/accept", "mtss/accept_reason", "mtss/accepted_by")


def accepting(context) -> set[str]:
    """The checks the run's tags accept (mtss/accept, with mtss/accept_reason: an acceptance needs a reason), unless
    it copied them from the run it re-executes (the UI's re-execution does): a person accepted that run's drop
    version, which dm.GateAcceptances keeps; a new version is judged afresh."""
    tags, parent = context.run.tags, parent_of(context.run)
    if not tags.get("mtss/accept_reason"):
        return set()
    before = context.instance.get_run_by_id(parent) if parent else None
    if before is not None and all(before.tags.get(k) == tags.get(k) for k in ACCEPT_TAGS):
        return set()
    return {g.strip() for g in tags.get("mtss/accept", "").split(",") if g.strip()}


def blocked_failure(summary: str, **metadata) -> dg.Failure:
    """How a blocked drop's step ends: the plain summary is the run's reason (the checks hold the details)."""
    return dg.Failure(description=summary, metadata=metadata, allow_retries=False)


@dg.asset(
    group_name="identity", kinds={"polars", "rapidfuzz"}, partitions_def=drops, owners=OWNERS,
    ins={"classlink": dg.AssetIn("validated_classlink_users")}, deps=[*ROSTER_DEPS, *ASSESSMENT_DEPS],
    check_specs=check_specs("district", "district_crosswalk"),
    description="For every file of the drop, the district it names, resolved against dm.AccountInfo; "
                "not materialized when the drop is not the registry's district (its checks say why)",
)
def district_crosswalk(context: dg.AssetExecutionContext, registry: RegistryResource, error_log: ErrorLogResource,
                       warehouse: WarehouseResource, account_info: pl.DataFrame, classlink: ValidatedFile):
    district = error_log.drop(context).district
    # in the sources' order: the crosswalk's rows as the core's
    validated = frames_of(context, (*ROSTER_FILES, *ASSESSMENT_FILES), district) | {"classlink_users": classlink}
    frame = pipeline.crosswalk(district, account_info, validated)
    outcomes = checks.decide("district", checks.Evidence(
        district, context.partition_key, crosswalk=frame, account_info=account_info, today=dt.date.today(),
        ferpa_max_days=registry.ferpa_review_max_days, max_days_ahead=registry.max_days_ahead,
        other_ids=under_other_ids(warehouse.engine(), district.district, district.account_info_id)))
    # Names that verified by score but are not in the registry: a person should confirm and list them.
    suggest = frame.filter(pl.col("suggest_listing"))
    per_file = md_table(frame.select("file_name", "source", "name_seen", "decision", "candidate",
                                     "candidate_account_info_id", "score", "margin", "verified"))
    reviewed = district.verification.ferpa_review_on
    extra = {  # what each check shows beside its reason
        "district_names_match_registry": dict(files=per_file, failing=int((~frame["verified"]).sum()),
                                              suggested_registry_names=dg.MetadataValue.md("\n".join(
            f"- add '{r['name_seen']}' to {listed_names(district, SOURCE_OF.get(r['source'], DIRECTORY))[0]} of "
            f"{district.district}'s "
            f"registry entry (it verified by score {r['score']}, margin {r['margin']})"
            for r in suggest.iter_rows(named=True)) or "_none_")),
        "ferpa_review_current": dict(max_age_days=registry.ferpa_review_max_days,
                                     ferpa_review_on=reviewed.isoformat() if reviewed else "none recorded"),
    }
    verdicts = [verdict(context, error_log, "district_crosswalk", o, **extra.get(o.name, {})) for o in outcomes]
    failed = [o for o in outcomes if not o.passed]
    if failed:
        # Not materialized: a refused drop's crosswalk is no good materialization of this partition.
        yield from verdicts
        context.resources.io_manager.forget(context.partition_key, *BUILT_ON_VERDICT)
        raise blocked_failure(pipeline.blocked_summary(district, context.partition_key, failed, frame), files=per_file)
    yield dg.Output(frame, metadata={
        "district": district.district, "account_info_id": district.account_info_id, "drop": context.partition_key,
        **table(frame.height, CROSSWALK_FRAME),
        # the drop's files whose district was read and verified (a halted file's was never read; the ClassLink
        # table is no file; a file naming its district two ways has a row for each)
        "files_verified": frame.filter((pl.col("source") != "classlink_users") & (pl.col("decision") != "halted")
                                       & pl.col("verified"))["file_name"].n_unique(),
        "files_halted": frame.filter(pl.col("decision") == "halted")["file_name"].n_unique(),
        "crosswalk": per_file,
    })
    yield from verdicts  # after the materialization they are the checks of


district_assets = [district_crosswalk]
