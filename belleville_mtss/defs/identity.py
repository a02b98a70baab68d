"""District crosswalk with its blocking checks, then the student identity map, roster and results."""

import datetime as dt

import dagster as dg
import polars as pl

from ..lib import crosswalk as xw
from ..lib import gates
from ..lib.catalog import (
    CROSSWALK_FRAME, IDENTITY_FRAME, RESULTS_TABLE, ROSTER_TABLE, STAR_ASSETS, results_lineage, roster_lineage,
)
from ..lib.drops import ReceivedDrop
from ..lib.errors import ErrorRecord
from ..lib.identity import IdentityMap, build_results, build_roster, link_problems, link_students
from ..lib.ingest import ValidatedFile
from ..lib.star import STAR_SCHEMA, SUBJECTS
from ..lib.warehouse import now
from .metadata import OWNERS, counts_md, md_table, table
from .partitions import drops
from .resources import MtssResource

STAR_INPUTS = {
    "star_reading": dg.AssetIn("validated_star_reading"),
    "star_math": dg.AssetIn("validated_star_math"),
    "star_early_literacy": dg.AssetIn("validated_star_early_literacy"),
}
# Held until the district's blocking checks pass, in this run and in automated later runs.
GATED = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


@dg.asset(
    group_name="identity", kinds={"polars", "rapidfuzz"}, partitions_def=drops, owners=OWNERS,
    ins={**STAR_INPUTS, "powerschool": dg.AssetIn("validated_powerschool_students"),
         "classlink": dg.AssetIn("validated_classlink_users")},
    description="For every file of the drop, the district it names, resolved against dm.AccountInfo",
)
def district_crosswalk(
    context: dg.AssetExecutionContext, mtss: MtssResource, account_info: pl.DataFrame,
    powerschool: ValidatedFile, classlink: ValidatedFile,
    star_reading: ValidatedFile, star_math: ValidatedFile, star_early_literacy: ValidatedFile,
) -> dg.Output[pl.DataFrame]:
    district = mtss.for_drop(context.partition_key)
    frame = xw.build_crosswalk(district, account_info, powerschool, classlink,
                               [star_reading, star_math, star_early_literacy])
    return dg.Output(frame, metadata={
        "district": district.district, "account_info_id": district.account_info_id, "drop": context.partition_key,
        **table(frame.height, CROSSWALK_FRAME),
        "files_verified": int(frame["verified"].sum()),
        "crosswalk": md_table(frame),
    })


@dg.asset_check(asset=district_crosswalk, blocking=True, partitions_def=drops,
                description="Every district name in the drop resolves to the registry's AccountInfoId")
def district_names_match_registry(
    context: dg.AssetCheckExecutionContext, mtss: MtssResource, district_crosswalk: pl.DataFrame
) -> dg.AssetCheckResult:
    failing = district_crosswalk.filter(~pl.col("verified"))
    district = mtss.for_drop(context.partition_key)
    records = [
        ErrorRecord(
            "district", "district_mismatch" if row["decision"] == "resolved" else f"district_{row['decision']}",
            f"{row['file_name']}: district name '{row['name_seen']}' "
            f"{'names another district' if row['decision'] == 'resolved' else 'is ' + row['decision']} "
            f"(best candidate {row['candidate']!s}, AccountInfoId {row['candidate_account_info_id']!s}, "
            f"score {row['score']!s}, margin {row['margin']!s}); the drop is registered to "
            f"AccountInfoId {district.account_info_id} ({district.display_name}, {district.state})",
            row["file_name"],
        )
        for row in failing.iter_rows(named=True)
    ]
    mtss.record(context, context.partition_key, records)
    if records:
        mtss.mark_files(context, "blocked")
    # Names that verified by score but are not in the registry: a person should confirm and list them.
    suggest = district_crosswalk.filter(pl.col("suggest_listing"))
    return dg.AssetCheckResult(
        passed=failing.is_empty(), severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failing": failing.height, "why": "; ".join(r.message for r in records) or "every name resolves",
                  "details": md_table(failing.select(
                      "file_name", "name_seen", "candidate", "candidate_account_info_id", "score", "margin",
                      "decision")),
                  "suggested_registry_names": dg.MetadataValue.md("\n".join(
                      f"- add '{r['name_seen']}' to source_names.{_LISTS[r['source']]} of {district.district}'s "
                      f"registry entry (it verified by score {r['score']}, margin {r['margin']})"
                      for r in suggest.iter_rows(named=True)) or "_none_")},
    )


_LISTS = {"classlink_users": "classlink", **{s: "renaissance" for s in STAR_ASSETS}}


@dg.asset_check(asset=district_crosswalk, blocking=True, partitions_def=drops, additional_ins={"account_info": dg.AssetIn("account_info")},
                description="The registry's AccountInfoId exists in dm.AccountInfo with the registry's NcesId and state")
def account_info_id_exists(
    context: dg.AssetCheckExecutionContext, mtss: MtssResource, district_crosswalk: pl.DataFrame,
    account_info: pl.DataFrame,
) -> dg.AssetCheckResult:
    problems = xw.account_info_problems(mtss.for_drop(context.partition_key), account_info)
    records = [ErrorRecord("district", "account_info", p, "dm.AccountInfo") for p in problems]
    mtss.record(context, context.partition_key, records)
    if records:
        mtss.mark_files(context, "blocked")
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"problems": "; ".join(problems) or "none"})


@dg.asset_check(asset=district_crosswalk, blocking=True, partitions_def=drops,
                description="The district's FERPA review of the identifiers used is recorded and recent enough")
def ferpa_review_current(
    context: dg.AssetCheckExecutionContext, mtss: MtssResource, district_crosswalk: pl.DataFrame
) -> dg.AssetCheckResult:
    district = mtss.for_drop(context.partition_key)
    problem = xw.ferpa_review_problem(district, dt.date.today(), mtss.ferpa_review_max_days)
    if problem:
        mtss.record(context, context.partition_key, [ErrorRecord("district", "ferpa_review", problem)])
        mtss.mark_files(context, "blocked")
    reviewed = district.verification.ferpa_review_on
    return dg.AssetCheckResult(passed=problem is None, severity=dg.AssetCheckSeverity.ERROR, metadata={
        "ferpa_review_on": reviewed.isoformat() if reviewed else "none recorded",
        "max_age_days": mtss.ferpa_review_max_days, "problem": problem or "none"})


def _star(*files: ValidatedFile) -> pl.DataFrame:
    """The usable Star frames of the drop, together (empty when every Star file was halted)."""
    frames = [v.frame for v in files if v.usable]
    return pl.concat(frames) if frames else pl.DataFrame(schema=STAR_SCHEMA)


def _require_verified(crosswalk: pl.DataFrame) -> None:
    # The blocking checks stop this asset within a run; this guards a run that selects it alone.
    if not crosswalk["verified"].all():
        raise dg.Failure("district identifiers of this drop are not verified; see the district_crosswalk checks")


@dg.asset(
    group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops, owners=OWNERS,
    ins={**STAR_INPUTS, "powerschool": dg.AssetIn("validated_powerschool_students"),
         "classlink": dg.AssetIn("validated_classlink_users")},
    description="ClassLink email = PowerSchool email; the registry's Renaissance identifier = its PowerSchool field",
)
def student_identity_map(
    context: dg.AssetExecutionContext, mtss: MtssResource, district_crosswalk: pl.DataFrame, powerschool: ValidatedFile,
    classlink: ValidatedFile, star_reading: ValidatedFile, star_math: ValidatedFile,
    star_early_literacy: ValidatedFile,
) -> dg.Output[IdentityMap]:
    _require_verified(district_crosswalk)
    if not powerschool.usable:
        raise dg.Failure(f"{powerschool.file_name or 'the PowerSchool export'} was halted "
                         f"({powerschool.halted.reason if powerschool.halted else 'missing'}): students cannot be "
                         "linked without it, nothing is loaded")
    stars = (star_reading, star_math, star_early_literacy)
    cl = classlink.frame if classlink.usable else pl.DataFrame(
        schema={"classlink_user_id": pl.Utf8, "tenant_name": pl.Utf8, "email_key": pl.Utf8})
    district = mtss.for_drop(context.partition_key)
    identity = link_students(powerschool.frame, cl, _star(*stars))
    files = {SUBJECTS[v.source]: v.file_name for v in stars if v.file_name}
    mtss.record(context, context.partition_key, link_problems(identity, powerschool.file_name, files,
                                                              district.student_link.renaissance))
    meta = {f"{link}/{k}": v for link, counts in identity.stats.items() for k, v in counts.items()}
    rates = "\n".join(f"| {link} | {c['match_rate']:.2%} | " + ", ".join(
        f"{k}={v}" for k, v in c.items() if k != "match_rate") + " |" for link, c in identity.stats.items())
    return dg.Output(identity, metadata={
        **table(identity.frame.height, IDENTITY_FRAME), **meta,
        "match_rates": dg.MetadataValue.md(f"| link | match rate | counts |\n|---|---|---|\n{rates}")})


GATE_INS = {"received_drop": dg.AssetIn("received_drop")}


def _gate(context, mtss: MtssResource, result: gates.GateResult, received: ReceivedDrop) -> dg.AssetCheckResult:
    """A gate's verdict: passed, accepted by a person for this drop version (now, through the run's tags, or
    earlier, recorded in dm.GateAcceptances), or failed, which is logged and blocks the warehouse."""
    key, engine = context.partition_key, mtss.warehouse()
    meta = {"gate": result.gate, "figure": result.figure, "threshold": result.threshold}
    if result.passed:
        return dg.AssetCheckResult(passed=True, metadata=meta)
    tags = context.run.tags
    if result.gate in {g.strip() for g in tags.get("mtss/accept", "").split(",")} and tags.get("mtss/accept_reason"):
        gates.accept(engine, key, received.version, result.gate, tags["mtss/accept_reason"],
                     tags.get("mtss/accepted_by", "unknown"), result.figure, context.run.run_id)
    accepted = gates.acceptance(engine, key, received.version, result.gate)
    if accepted:
        return dg.AssetCheckResult(passed=True, metadata={
            **meta, "accepted_by": accepted["AcceptedBy"], "accepted_reason": accepted["Reason"],
            "accepted_at": accepted["AcceptedAt"].isoformat(timespec="seconds")})
    message = (f"{result.message} (to load this drop version anyway: belleville-mtss run {key} "
               f"--accept {result.gate} --reason TEXT)")
    mtss.record(context, key, [ErrorRecord("gate", result.gate, message)])
    mtss.mark_files(context, "blocked")
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={**meta, "why": message})


@dg.asset_check(asset=student_identity_map, blocking=True, partitions_def=drops, additional_ins=GATE_INS,
                description=f"Gate: {gates.GATES['classlink_link_rate']} (registry gates.min_classlink_link_rate)")
def classlink_link_rate(context: dg.AssetCheckExecutionContext, mtss: MtssResource, student_identity_map: IdentityMap,
                        received_drop: ReceivedDrop) -> dg.AssetCheckResult:
    district = mtss.for_drop(context.partition_key)
    return _gate(context, mtss, gates.classlink_link_rate(district, student_identity_map), received_drop)


@dg.asset_check(asset=student_identity_map, blocking=True, partitions_def=drops, additional_ins=GATE_INS,
                description=f"Gate: {gates.GATES['star_link_rate']} (registry gates.min_star_link_rate)")
def star_link_rate(context: dg.AssetCheckExecutionContext, mtss: MtssResource, student_identity_map: IdentityMap,
                   received_drop: ReceivedDrop) -> dg.AssetCheckResult:
    district = mtss.for_drop(context.partition_key)
    return _gate(context, mtss, gates.star_link_rate(district, student_identity_map), received_drop)


@dg.asset_check(asset=student_identity_map, blocking=True, partitions_def=drops, additional_ins=GATE_INS,
                description=f"Gate: {gates.GATES['roster_size']} (registry gates.max_roster_change)")
def roster_size(context: dg.AssetCheckExecutionContext, mtss: MtssResource, student_identity_map: IdentityMap,
                received_drop: ReceivedDrop) -> dg.AssetCheckResult:
    district = mtss.for_drop(context.partition_key)
    current = gates.current_roster(mtss.warehouse(), district.account_info_id)
    return _gate(context, mtss, gates.roster_size(district, student_identity_map, current), received_drop)


@dg.asset_check(asset=student_identity_map, blocking=True, partitions_def=drops,
                additional_ins={**GATE_INS, **STAR_INPUTS},
                description=f"Gate: {gates.GATES['star_files_linked']}")
def star_files_linked(context: dg.AssetCheckExecutionContext, mtss: MtssResource, student_identity_map: IdentityMap,
                      received_drop: ReceivedDrop, star_reading: ValidatedFile, star_math: ValidatedFile,
                      star_early_literacy: ValidatedFile) -> dg.AssetCheckResult:
    rows = {SUBJECTS[v.source]: (v.file_name, v.rows_in_file) for v in (star_reading, star_math, star_early_literacy)
            if v.file_name and not v.halted}
    return _gate(context, mtss, gates.star_files_linked(student_identity_map, rows), received_drop)


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, partitions_def=drops,
          owners=OWNERS, ins={"powerschool": dg.AssetIn("validated_powerschool_students")}, deps=[district_crosswalk],
          description="One row per student of the drop, stamped with the district's AccountInfoId")
def student_roster(
    context: dg.AssetExecutionContext, mtss: MtssResource, powerschool: ValidatedFile, student_identity_map: IdentityMap
) -> dg.Output[pl.DataFrame]:
    key = context.partition_key
    roster = build_roster(powerschool.frame, student_identity_map.frame, mtss.for_drop(key).account_info_id, key,
                          now())
    return dg.Output(roster, metadata=table(roster.height, ROSTER_TABLE, roster_lineage(mtss.for_drop(key))))


@dg.asset(group_name="identity", kinds={"polars"}, automation_condition=GATED, ins=STAR_INPUTS, partitions_def=drops,
          owners=OWNERS, deps=[district_crosswalk],
          description="One row per Star test (SR, SM, SEL) of a linked student, stamped with AccountInfoId")
def assessment_results(
    context: dg.AssetExecutionContext, mtss: MtssResource, student_identity_map: IdentityMap,
    star_reading: ValidatedFile, star_math: ValidatedFile, star_early_literacy: ValidatedFile,
) -> dg.Output[pl.DataFrame]:
    star = _star(star_reading, star_math, star_early_literacy)
    key = context.partition_key
    results, duplicates = build_results(star, student_identity_map.frame, mtss.for_drop(key).account_info_id, key,
                                        now())
    by_subject = dict(results.group_by("Subject").len().sort("Subject").iter_rows())
    lineage = results_lineage(mtss.for_drop(key))
    return dg.Output(results, metadata={**table(results.height, RESULTS_TABLE, lineage),
                                        "duplicate_tests_dropped": duplicates,
                                        "rows_by_subject": counts_md("rows by subject", by_subject)})


identity_assets = [district_crosswalk, student_identity_map, student_roster, assessment_results]
identity_checks = [district_names_match_registry, account_info_id_exists, ferpa_review_current,
                   classlink_link_rate, star_link_rate, roster_size, star_files_linked]
