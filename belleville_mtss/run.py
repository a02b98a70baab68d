"""Running a drop through the asset graph in-process, on the Dagster instance the UI shows (`dagster_home`); the
run is tagged with its outcome (belleville_mtss/report.py), and its steps can be followed (progress.py)."""
import os
import uuid
from collections.abc import Collection
from contextlib import nullcontext
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from .definitions import build_definitions
from .defs.assets import drop_assets, drop_tags
from .lib.config import Settings
from .progress import Progress
from .defs.recovery import own_tags, process_tags, tag_own
from .report import OUTCOME_TAG, WAREHOUSE, DropReport


# Written into a new instance folder only (an existing dagster.yaml is never touched): no usage statistics leave
# the machine, one event-log database for all runs (cheaper to write than a database per run), and Dagster's
# SQLite storages with one engine per process (instance_storage.py says why).
INSTANCE_YAML = """telemetry:
  enabled: false
run_storage:
  module: belleville_mtss.instance_storage
  class: PooledSqliteRunStorage
  config:
    base_dir: {home}/history
event_log_storage:
  module: belleville_mtss.instance_storage
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {home}/history
schedule_storage:
  module: belleville_mtss.instance_storage
  class: PooledSqliteScheduleStorage
  config:
    base_dir: {home}/schedules
"""


def dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME if set, else MTSS_HOME/dagster (created): where `demo`, `run`, the sensor's runs and
    `dagster dev` (the README's command sets DAGSTER_HOME to it) keep runs, events and check results."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        written = home / f".dagster.yaml.{os.getpid()}"
        written.write_text(INSTANCE_YAML.format(home=home))
        written.replace(config)  # whole or not at all, whoever else is writing it
    return home


INSTANCE_INIT_WAIT_S = 120
INSTANCE_WHOLE = ".storages-whole"  # in DAGSTER_HOME: its storages were made (or upgraded) to the end once


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """The instance, its storages made (or upgraded) by one process at a time: six first runs at once on a new home
    would otherwise each create the tables and stamp their own migration heads."""
    from .lib.load.lock import file_lock
    home = dagster_home(settings)
    with file_lock(home / ".init.lock", INSTANCE_INIT_WAIT_S):
        instance = dg.DagsterInstance.from_config(str(home))
        instance.run_storage, instance.event_log_storage, instance.schedule_storage  # made now, under the lock
        whole = home / INSTANCE_WHOLE
        if not whole.exists():
            # A first run killed while Dagster made its storages left tables without their migration records, and
            # every run after it failed on a table "missing": until they are known whole, they are upgraded (as
            # `dagster instance migrate` does), which makes what is missing
            instance.upgrade()
            whole.touch()
    return instance


def run_drop(
    settings: Settings, drop_key: str = "belleville/2026-11-01", *, instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING", tags: dict[str, str] | None = None, progress: bool = False,
    leave_out: Collection[str] = (),
) -> DropReport:
    """Materialize every asset and check of one drop (partition "<district>/<drop name>") in-process; the run is
    tagged with its outcome. `progress`: the run's steps are shown as they go (progress.py). `leave_out`: assets
    not to materialize (the benchmark leaves out the warehouse loads; the checks of the assets kept still run)."""
    defs = build_definitions(settings)
    job = defs.resolve_job_def("drop_job")
    entry = registry_entry(settings, drop_key)
    selection = [key for key in drop_assets(entry) if key.to_user_string() not in leave_out]
    loggers = {"console": {"config": {"log_level": log_level}}, **({"progress": {}} if progress else {})}
    shown = Progress(len(job.graph.nodes), drop_key).attached() if progress else nullcontext()
    with (instance_for(settings) if instance is None else nullcontext(instance)) as inst, shown:
        inst.add_dynamic_partitions("drops", [drop_key])
        # tagged as the district's from its start: a run killed before its first step is found, and settled, by
        # the district's next run (its receipt tags it again, with the registry's spelling of the district)
        run_id = str(uuid.uuid4())  # a run id as Dagster makes one
        result = job.execute_in_process(
            instance=inst, raise_on_error=False, partition_key=drop_key, run_id=run_id,
            # the kinds of file asked for are those selected, whatever a caller's tags say
            tags={**own_tags(run_id, process_tags(drop_key.split("/", 1)[0])), **(tags or {}), **drop_tags(entry)},
            asset_selection=selection, run_config={"loggers": loggers})
        report = DropReport.from_events(drop_key, result.all_events)
        # what the run was to load (its stored events plan it; an in-process result's events hold no plan)
        report.planned = report.planned or {n for n in WAREHOUSE if n not in leave_out}
        if report.outcome == "failed":  # what no step decided (a crash, a refused step) is decided now
            settle_failed(settings, drop_key, result.run_id, report.causes)
        tag_own(inst, result.run_id, {OUTCOME_TAG: report.outcome})
    return report


def registry_entry(settings: Settings, drop_key: str):
    """The registry entry of the drop's district as it is now, or None where it has no usable one (its run's first
    step then says why)."""
    from .lib.district.registry import RegistryError, load_registry
    try:
        return load_registry(settings.districts_dirs).get(drop_key.split("/", 1)[0])
    except RegistryError:
        return None


def settle_failed(settings: Settings, drop_key: str, run_id: str, causes: dict[str, str]) -> None:
    """A failed run's files still `received` in the audit become `failed`; a run no step logged gets its error row."""
    from .lib.district.registry import load_registry
    from .lib.load.errors import settle_failed_run
    from .lib.load.migrations import WarehouseNotReady, open_warehouse
    engine = None
    try:
        engine = open_warehouse(settings.warehouse_url, settings.embedded_warehouse)
        settle_failed_run(engine, lambda: load_registry(settings.districts_dirs), drop_key, run_id, causes)
    except (sa.exc.SQLAlchemyError, WarehouseNotReady):
        pass  # the warehouse itself is what failed: the run's own failure says why
    finally:
        if engine is not None:
            engine.dispose()
