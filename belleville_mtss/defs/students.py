"""Students: the identity map with its gates (lib/checks.py), the roster and the results (lib/students/). Each asset
and check calls one stage of lib/pipeline.py; the assessment inputs are every assessment source's files."""
import dagster as dg
import polars as pl

from ..lib import checks, pipeline
from ..lib.columns import IDENTITY_FRAME, RESULTS_TABLE, ROSTER_TABLE, lineage
from ..lib.load.warehouse import now
from ..lib.read.ingest import ValidatedFile, readers
from ..lib.sources import ASSESSMENT_FILES, SOURCE_OF
from ..lib.receive.drops import ReceivedDrop
from ..lib.students import gates, review
from ..lib.students.suggest import read_people
from ..lib.receive.drops import read_staged, why_unreadable
from ..lib.receive.vault import VaultError
from pathlib import Path
from ..lib.students.identity import IdentityMap
from .district import (ASSESSMENT_DEPS, GATED, ROSTER_DEPS, accepted_result, accepting, assessments_of, blocked_failure,
                       BUILT_ON_VERDICT, check_specs, district_crosswalk, frames_of, verdict)
from .metadata import OWNERS, counts_md, table
from .partitions import drops
from .read import Unusable, unusable
from .resources import DropServerResource, ErrorLogResource, WarehouseResource


@dg.asset(
    group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
    ins={"classlink": dg.AssetIn("validated_classlink_users")}, deps=[*ASSESSMENT_DEPS, *ROSTER_DEPS],
    check_specs=check_specs("gate", "student_identity_map"),
    description="ClassLink email = the roster's email; each assessment source's link column = the roster's link "
                "field (the registry's); not materialized when a gate fails (its checks say why)",
)
def student_identity_map(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
                         warehouse: WarehouseResource, district_crosswalk: pl.DataFrame, received_drop: ReceivedDrop,
                         classlink: ValidatedFile):
    district = error_log.drop(context).district
    files = frames_of(context, (district.roster_kind, *ASSESSMENT_FILES), district)
    accepted = review.accepted(warehouse.engine(), district.account_info_id)  # a person's decisions, applied
    try:
        identity, errors = pipeline.link(district, district_crosswalk, pipeline.roster_of(district, files), classlink,
                                         assessments_of(files), accepted)
    except pipeline.Stop as exc:
        raise dg.Failure(str(exc)) from None
    error_log.record(context, context.partition_key, errors)
    # The gates, in this step: a map that failed one is never kept, so no later run's step can load the drop with it
    evidence = checks.Evidence(district, context.partition_key, identity=identity,
                               current_roster=gates.current_roster(warehouse.engine(), district.account_info_id))
    verdicts, failed = [], []
    for outcome in checks.decide("gate", evidence):
        result, failure = _gate(context, error_log, warehouse, outcome, received_drop)
        verdicts.append(result)
        failed += [failure] if failure else []
    if failed:
        yield from verdicts
        context.resources.io_manager.forget(context.partition_key, *BUILT_ON_VERDICT[1:])
        raise blocked_failure(pipeline.blocked_summary(district, context.partition_key, failed))
    meta = {f"{link}/{k}": v for link, counts in identity.stats.items() for k, v in counts.items()}
    rates = "\n".join(f"| {link} | {c['match_rate']:.2%} | " + ", ".join(
        f"{k}={v}" for k, v in c.items() if k != "match_rate") + " |" for link, c in identity.stats.items())
    yield dg.Output(identity, metadata={"accepted_links_applied": accepted.height,
        **table(identity.frame.height, IDENTITY_FRAME, lineage(district)["student_identity_map"]), **meta,
        "match_rates": dg.MetadataValue.md(f"| link | match rate | counts |\n|---|---|---|\n{rates}")})
    yield from verdicts  # after the materialization they are the checks of


def _gate(context, error_log: ErrorLogResource, warehouse: WarehouseResource, outcome: checks.CheckOutcome,
          received: ReceivedDrop) -> tuple[dg.AssetCheckResult, checks.CheckOutcome | None]:
    """A gate's verdict: passed, accepted by a person for this drop version (now, through the run's tags, or
    earlier, recorded in dm.GateAcceptances), or failed (returned with its outcome), which is logged and blocks
    the warehouse."""
    key, engine = context.partition_key, warehouse.engine()
    meta = {"gate": outcome.name, "figure": outcome.figure, "threshold": outcome.threshold}
    if not outcome.passed:
        tags = context.run.tags
        if outcome.name in accepting(context):
            gates.accept(engine, key, received.content_version, outcome.name, tags["mtss/accept_reason"],
                         tags.get("mtss/accepted_by", "unknown"), outcome.figure, context.run.run_id)
        accepted = gates.acceptance(engine, key, received.acceptance_keys, outcome.name)
        if accepted:
            return accepted_result(outcome, student_identity_map.key, accepted, **meta), None
    return (verdict(context, error_log, "student_identity_map", outcome, **meta),
            None if outcome.passed else outcome)


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops,
          owners=OWNERS, deps=[*ROSTER_DEPS, district_crosswalk],
          description="One row per student of the drop, stamped with the district's AccountInfoId")
def student_roster(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
                   student_identity_map: IdentityMap) -> dg.Output[pl.DataFrame]:
    district = error_log.drop(context).district
    files = frames_of(context, (district.roster_kind,), district)
    roster = pipeline.roster(district, pipeline.roster_of(district, files), student_identity_map,
                             context.partition_key, now())
    return dg.Output(roster, metadata=table(roster.height, ROSTER_TABLE, lineage(district)["student_roster"]))


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops,
          owners=OWNERS, deps=[*ASSESSMENT_DEPS, district_crosswalk],
          description="One row per test event of a linked student, every assessment's, stamped with AccountInfoId "
                      "and its Assessment")
def assessment_results(context: dg.AssetExecutionContext, error_log: ErrorLogResource,
                       student_identity_map: IdentityMap) -> dg.Output[pl.DataFrame]:
    district = error_log.drop(context).district
    assessments = assessments_of(frames_of(context, ASSESSMENT_FILES, district))
    results, duplicates = pipeline.results(district, assessments, student_identity_map, context.partition_key, now())
    by_subject = {" ".join(k): n for *k, n in results.group_by("Assessment", "Subject").len()
                  .sort("Assessment", "Subject").iter_rows()}
    return dg.Output(results, metadata={**table(results.height, RESULTS_TABLE, lineage(district)["assessment_results"]),
                                        "duplicate_tests_dropped": duplicates,
                                        "rows_by_subject": counts_md("rows by assessment and subject", by_subject)})


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
          ins={"classlink": dg.AssetIn("validated_classlink_users")}, deps=[*ASSESSMENT_DEPS, *ROSTER_DEPS],
          description="Suggested counterparts of the students no identifier links, for a person to accept or reject "
                      "(`belleville-mtss links review`); kept in dm.LinkSuggestions, counts only here")
def link_review(context: dg.AssetExecutionContext, error_log: ErrorLogResource, warehouse: WarehouseResource,
                drop_server: DropServerResource, student_identity_map: IdentityMap,
                classlink: ValidatedFile, received_drop: ReceivedDrop) -> dg.MaterializeResult:
    district, key = error_log.drop(context).district, context.partition_key
    files = frames_of(context, (district.roster_kind, *ASSESSMENT_FILES), district)
    staged = {f.name: f for f in received_drop.files}
    def raw(source) -> list[pl.DataFrame]:  # a source's identifying columns, decrypted again only when needed
        names = [v.file_name for v in assessments_of(files) if v.usable and v.file_name in staged
                 and SOURCE_OF[v.source] is source]
        def people_of(name: str) -> pl.DataFrame:
            try:
                data = read_staged(Path(received_drop.folder), staged[name], drop_server.vault_key())
            except VaultError as exc:  # gone or altered since the drop was read, or replaced by a later receipt
                raise Unusable(name, why_unreadable(received_drop, exc),
                               "no link suggestions were made for this drop") from None
            return read_people(name, data, source, district)  # by the reader that read it for the drop
        # the files at the same time: decryption and parsing release the GIL
        with readers(len(names), "mtss-people") as pool:
            return list(pool.map(people_of, names))

    try:
        found = pipeline.suggestions(district, student_identity_map, pipeline.roster_of(district, files), classlink,
                                     assessments_of(files), raw)
    except Unusable as exc:
        raise unusable(context, error_log, "identity", exc) from None
    engine = warehouse.engine()
    new = review.record(engine, district.account_info_id, key, found)
    figures = review.counts(engine, district.account_info_id)
    return dg.MaterializeResult(metadata={"suggested_this_drop": found.height, "new_this_drop": new, **figures})


students_assets = [student_identity_map, student_roster, assessment_results, link_review]
