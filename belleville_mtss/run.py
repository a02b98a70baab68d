"""Running a drop through the asset graph in-process; the run is tagged with its outcome (belleville_mtss/report.py)."""
from collections.abc import Collection
from contextlib import nullcontext

import dagster as dg

from .definitions import ASSETS, build_definitions
from .lib.config import Settings
from .report import OUTCOME_TAG, DropReport

def run_drop(
    settings: Settings, drop_key: str = "belleville/2026-11-01", *, instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING", tags: dict[str, str] | None = None, leave_out: Collection[str] = (),
) -> DropReport:
    """Materialize every asset and check of one drop (partition "<district>/<drop name>") in-process; the run is
    tagged with its outcome. `leave_out`: assets not to materialize (the benchmark leaves out the warehouse loads;
    the checks of the assets kept still run)."""
    defs = build_definitions(settings)
    job = defs.resolve_job_def("drop_job")
    selection = [key for asset in ASSETS for key in asset.keys if key.to_user_string() not in leave_out] \
        if leave_out else None
    with (dg.DagsterInstance.ephemeral() if instance is None else nullcontext(instance)) as inst:
        inst.add_dynamic_partitions("drops", [drop_key])
        result = job.execute_in_process(
            instance=inst, raise_on_error=False, partition_key=drop_key, tags=tags or {}, asset_selection=selection,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        report = DropReport.from_events(drop_key, result.all_events)
        inst.add_run_tags(result.run_id, {OUTCOME_TAG: report.outcome})
    return report
