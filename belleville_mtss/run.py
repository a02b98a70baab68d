"""Running a drop through the asset graph in-process, and the short report people read afterwards."""
from contextlib import nullcontext
from dataclasses import dataclass, field

import dagster as dg

from .definitions import build_definitions
from .lib.config import Settings

SOURCES = ["received_drop", "powerschool_students", "star_reading", "star_math", "star_early_literacy", "classlink_users",
           "account_info"]
VALIDATED = ["validated_powerschool_students", "validated_star_reading", "validated_star_math",
             "validated_star_early_literacy", "validated_classlink_users"]
WAREHOUSE = {"dm_student_roster": "dm.StudentRoster", "dm_assessment_results": "dm.AssessmentResults"}


@dataclass
class DropReport:
    success: bool
    source_rows: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    halted: dict[str, str] = field(default_factory=dict)
    links: dict[str, dict] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # step -> its one-line failure message

    @property
    def checks_passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def render(self) -> str:
        out = ["Rows per source:"]
        out += [f"  {k:<32} {v:>8}" for k, v in self.source_rows.items()]
        out.append("Rows rejected at validation:")
        out += [f"  {k:<32} {v:>8}" for k, v in self.rejected.items()]
        out += [f"  HALTED {k}: {v}" for k, v in self.halted.items()]
        out.append("Identity links:")
        for link, counts in self.links.items():
            detail = ", ".join(f"{k}={v}" for k, v in counts.items() if k != "match_rate")
            out.append(f"  {link:<32} match rate {counts.get('match_rate', 0):.2%} ({detail})")
        out.append("Blocking checks:")
        out += [f"  {k:<32} {'PASSED' if v else 'FAILED'}" for k, v in self.checks.items()]
        out.append("Rows written to the warehouse:")
        out += [f"  {WAREHOUSE[k]:<32} {self.written.get(k, 0):>8}" for k in WAREHOUSE]
        if not self.written:
            out.append("  (nothing written: the warehouse was not touched)")
        out += [f"Step {step} failed: {message}" for step, message in self.failures.items()]
        return "\n".join(out)

    def verdict(self) -> str:
        """One line: what happened to the drop."""
        if self.failures:
            return "FAILED: " + next(iter(self.failures.values()))
        if not (self.success and self.checks_passed):
            return "FAILED: see the checks and dm.IngestionErrors."
        return "OK: every blocking check passed."


def _meta(mat: dg.AssetMaterialization) -> dict:
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def run_drop(
    settings: Settings, drop_key: str = "belleville/2026-11-01", *, instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
) -> DropReport:
    """Materialize every asset and check of one drop (partition "<district>/<drop name>") in-process."""
    defs = build_definitions(settings)
    job = defs.resolve_job_def("drop_job")
    with (dg.DagsterInstance.ephemeral() if instance is None else nullcontext(instance)) as inst:
        inst.add_dynamic_partitions("drops", [drop_key])
        result = job.execute_in_process(
            instance=inst, raise_on_error=False, partition_key=drop_key,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
    report = DropReport(success=result.success)
    for node in [*SOURCES, *VALIDATED, "student_identity_map", *WAREHOUSE]:
        mats = result.asset_materializations_for_node(node)
        if not mats:
            continue
        meta = _meta(mats[-1])
        if node == "received_drop":
            continue
        if node in SOURCES:
            report.source_rows[node] = int(meta.get("dagster/row_count", 0))
        elif node in VALIDATED:
            report.rejected[node] = int(meta.get("rows_rejected", 0))
            if meta.get("halted"):
                report.halted[node] = meta["halted"]
        elif node == "student_identity_map":
            for key, value in meta.items():
                if "/" in key and not key.startswith("dagster/"):
                    link, name = key.split("/", 1)
                    report.links.setdefault(link, {})[name] = value
        else:
            report.written[node] = int(meta.get("rows_written", 0))
    for ev in result.get_asset_check_evaluations():
        report.checks[ev.check_name] = ev.passed
    for event in result.all_events:
        if event.is_step_failure:
            failure = event.step_failure_data
            text = failure.user_failure_data.description if failure.user_failure_data else failure.error.message
            report.failures[event.step_key] = " ".join((text or "").split())
    return report
