"""District crosswalk with its blocking checks, then the student identity map with its gates, the roster and the
results. Each asset and check calls one stage of lib/pipeline.py; the Star inputs come from the catalogue."""
import datetime as dt

import dagster as dg
import polars as pl

from ..lib import checks
from ..lib.students import gates
from ..lib import pipeline
from ..lib.read.catalog import POWERSCHOOL, STAR_FILES
from ..lib.columns import (
    CROSSWALK_FRAME, IDENTITY_FRAME, RESULTS_TABLE, ROSTER_TABLE, STAR_ASSETS, lineage,
)
from ..lib.receive.drops import ReceivedDrop
from ..lib.students.identity import IdentityMap
from ..lib.read.ingest import ValidatedFile
from ..lib.load.warehouse import now
from .metadata import OWNERS, counts_md, md_table, table
from .partitions import drops
from .resources import ErrorLogResource, RegistryResource, WarehouseResource

STAR_INPUTS = {f.name: dg.AssetIn(f.validated) for f in STAR_FILES}
# Held until the drop's blocking checks pass, in this run and in automated later runs.
GATED = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def _stars(inputs: dict) -> list[ValidatedFile]:
    return [inputs[f.name] for f in STAR_FILES]


def check_specs(stage: checks.Stage, asset: str, **kwargs) -> list[dg.AssetCheckSpec]:
    """The catalogue's checks of a stage (lib/checks.py) as blocking check specs of `asset`, per drop."""
    return [dg.AssetCheckSpec(c.name, asset=asset, blocking=stage != "load", description=c.description,
                              partitions_def=drops, **kwargs) for c in checks.of_stage(stage)]


_LISTS = {"classlink_users": "classlink", **{s: "renaissance" for s in STAR_ASSETS}}


def _verdict(context, error_log: ErrorLogResource, asset: str, outcome: checks.CheckOutcome,
             **metadata) -> dg.AssetCheckResult:
    """A blocking check's result; a failure writes its error rows and marks the drop's files blocked."""
    error_log.record(context, context.partition_key, outcome.records)
    if not outcome.passed:
        error_log.mark_files(context, "blocked")
    return dg.AssetCheckResult(check_name=outcome.name, asset_key=asset, passed=outcome.passed,
                               severity=dg.AssetCheckSeverity.ERROR, metadata={"why": outcome.why, **metadata})


def _blocked(summary: str, **metadata) -> dg.Failure:
    """How a blocked drop's step ends: the plain summary is the run's reason (the checks hold the details)."""
    return dg.Failure(description=summary, metadata=metadata, allow_retries=False)


@dg.asset(
    group_name="identity", kinds={"polars", "rapidfuzz"}, partitions_def=drops, owners=OWNERS,
    ins={**STAR_INPUTS, "powerschool": dg.AssetIn(POWERSCHOOL.validated),
         "classlink": dg.AssetIn("validated_classlink_users")},
    check_specs=check_specs("district", "district_crosswalk"),
    description="For every file of the drop, the district it names, resolved against dm.AccountInfo; "
                "not materialized when the drop is not the registry's district (its checks say why)",
)
def district_crosswalk(context: dg.AssetExecutionContext, registry: RegistryResource, error_log: ErrorLogResource,
                       account_info: pl.DataFrame, powerschool: ValidatedFile, classlink: ValidatedFile,
                       **stars: ValidatedFile):
    district = error_log.drop(context).district
    validated = {POWERSCHOOL.name: powerschool, "classlink_users": classlink, **stars}
    frame = pipeline.crosswalk(district, account_info, validated)
    outcomes = checks.decide("district", checks.Evidence(
        district, context.partition_key, crosswalk=frame, account_info=account_info, today=dt.date.today(),
        ferpa_max_days=registry.ferpa_review_max_days))
    # Names that verified by score but are not in the registry: a person should confirm and list them.
    suggest = frame.filter(pl.col("suggest_listing"))
    per_file = md_table(frame.select("file_name", "source", "name_seen", "decision", "candidate",
                                     "candidate_account_info_id", "score", "margin", "verified"))
    reviewed = district.verification.ferpa_review_on
    extra = {  # what each check shows beside its reason
        "district_names_match_registry": dict(files=per_file, failing=int((~frame["verified"]).sum()),
                                              suggested_registry_names=dg.MetadataValue.md("\n".join(
            f"- add '{r['name_seen']}' to source_names.{_LISTS[r['source']]} of {district.district}'s "
            f"registry entry (it verified by score {r['score']}, margin {r['margin']})"
            for r in suggest.iter_rows(named=True)) or "_none_")),
        "ferpa_review_current": dict(max_age_days=registry.ferpa_review_max_days,
                                     ferpa_review_on=reviewed.isoformat() if reviewed else "none recorded"),
    }
    verdicts = [_verdict(context, error_log, "district_crosswalk", o, **extra.get(o.name, {})) for o in outcomes]
    failed = [o for o in outcomes if not o.passed]
    if failed:
        # Not materialized: a refused drop's crosswalk is no good materialization of this partition.
        yield from verdicts
        raise _blocked(pipeline.blocked_summary(district, context.partition_key, failed, frame), files=per_file)
    yield dg.Output(frame, metadata={
        "district": district.district, "account_info_id": district.account_info_id, "drop": context.partition_key,
        **table(frame.height, CROSSWALK_FRAME),
        "files_verified": int(frame["verified"].sum()),
        "crosswalk": per_file,
    })
    yield from verdicts  # after the materialization they are the checks of


@dg.asset(
    group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
    ins={**STAR_INPUTS, "powerschool": dg.AssetIn(POWERSCHOOL.validated),
         "classlink": dg.AssetIn("validated_classlink_users")},
    description="ClassLink email = PowerSchool email; the registry's Renaissance identifier = its PowerSchool field",
)
def student_identity_map(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
                         district_crosswalk: pl.DataFrame, powerschool: ValidatedFile, classlink: ValidatedFile,
                         **stars: ValidatedFile) -> dg.Output[IdentityMap]:
    district = error_log.drop(context).district
    try:
        identity, errors = pipeline.link(district, district_crosswalk, powerschool, classlink, _stars(stars))
    except pipeline.Stop as exc:
        raise dg.Failure(str(exc)) from None
    error_log.record(context, context.partition_key, errors)
    meta = {f"{link}/{k}": v for link, counts in identity.stats.items() for k, v in counts.items()}
    rates = "\n".join(f"| {link} | {c['match_rate']:.2%} | " + ", ".join(
        f"{k}={v}" for k, v in c.items() if k != "match_rate") + " |" for link, c in identity.stats.items())
    return dg.Output(identity, metadata={
        **table(identity.frame.height, IDENTITY_FRAME, lineage(district)["student_identity_map"]), **meta,
        "match_rates": dg.MetadataValue.md(f"| link | match rate | counts |\n|---|---|---|\n{rates}")})


def _gate(context, error_log: ErrorLogResource, warehouse: WarehouseResource, outcome: checks.CheckOutcome,
          received: ReceivedDrop) -> tuple[dg.AssetCheckResult, checks.CheckOutcome | None]:
    """A gate's verdict: passed, accepted by a person for this drop version (now, through the run's tags, or
    earlier, recorded in dm.GateAcceptances), or failed (returned with its outcome), which is logged and blocks
    the warehouse."""
    key, engine = context.partition_key, warehouse.engine()
    meta = {"gate": outcome.name, "figure": outcome.figure, "threshold": outcome.threshold}
    if not outcome.passed:
        tags = context.run.tags
        accepting = {g.strip() for g in tags.get("mtss/accept", "").split(",")}
        if outcome.name in accepting and tags.get("mtss/accept_reason"):
            gates.accept(engine, key, received.version, outcome.name, tags["mtss/accept_reason"],
                         tags.get("mtss/accepted_by", "unknown"), outcome.figure, context.run.run_id)
        accepted = gates.acceptance(engine, key, received.version, outcome.name)
        if accepted:
            return dg.AssetCheckResult(check_name=outcome.name, asset_key=student_identity_map.key, passed=True,
                                       metadata={**meta, "why": outcome.figure,
                                                 "accepted_by": accepted["AcceptedBy"],
                                                 "accepted_reason": accepted["Reason"],
                                                 "accepted_at": accepted["AcceptedAt"].isoformat(timespec="seconds")}
                                       ), None
    return (_verdict(context, error_log, "student_identity_map", outcome, **meta),
            None if outcome.passed else outcome)


@dg.multi_asset_check(specs=check_specs("gate", "student_identity_map", additional_deps=["received_drop"]),
                      name="gate_checks",
                      ins={"identity": dg.AssetIn("student_identity_map"),
                           "received_drop": dg.AssetIn("received_drop")})
def gate_checks(context: dg.AssetCheckExecutionContext, error_log: ErrorLogResource,
                warehouse: WarehouseResource, identity: IdentityMap, received_drop: ReceivedDrop):
    """The drop's gates, in one step; a failed gate (not accepted) ends it with the plain summary."""
    district = error_log.drop(context).district
    evidence = checks.Evidence(district, context.partition_key, identity=identity,
                               current_roster=gates.current_roster(warehouse.engine(), district.account_info_id))
    failed = []
    for outcome in checks.decide("gate", evidence):
        result, failure = _gate(context, error_log, warehouse, outcome, received_drop)
        yield result
        failed += [failure] if failure else []
    if failed:
        raise _blocked(pipeline.blocked_summary(district, context.partition_key, failed))


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops,
          owners=OWNERS, ins={"powerschool": dg.AssetIn(POWERSCHOOL.validated)}, deps=[district_crosswalk],
          description="One row per student of the drop, stamped with the district's AccountInfoId")
def student_roster(context: dg.AssetExecutionContext, error_log: ErrorLogResource, powerschool: ValidatedFile,
                   student_identity_map: IdentityMap) -> dg.Output[pl.DataFrame]:
    district = error_log.drop(context).district
    roster = pipeline.roster(district, powerschool, student_identity_map, context.partition_key, now())
    return dg.Output(roster, metadata=table(roster.height, ROSTER_TABLE, lineage(district)["student_roster"]))


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, ins=STAR_INPUTS, partitions_def=drops,
          owners=OWNERS, deps=[district_crosswalk],
          description="One row per Star test of a linked student, stamped with AccountInfoId")
def assessment_results(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
                       student_identity_map: IdentityMap, **stars: ValidatedFile) -> dg.Output[pl.DataFrame]:
    district = error_log.drop(context).district
    results, duplicates = pipeline.results(district, _stars(stars), student_identity_map, context.partition_key,
                                           now())
    by_subject = dict(results.group_by("Subject").len().sort("Subject").iter_rows())
    return dg.Output(results, metadata={**table(results.height, RESULTS_TABLE, lineage(district)["assessment_results"]),
                                        "duplicate_tests_dropped": duplicates,
                                        "rows_by_subject": counts_md("rows by subject", by_subject)})


identity_assets = [district_crosswalk, student_identity_map, student_roster, assessment_results]
identity_checks = [gate_checks]
