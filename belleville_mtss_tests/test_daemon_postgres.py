"""The whole sensor, run and check cycle on the production instance configuration (deploy/dagster.yaml):
PostgreSQL run, event-log and schedule storage, the queued run coordinator, and a real dagster-daemon
processing two districts' drops concurrently."""
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import make_settings
from .helpers import SMALL, RIVERTON, add_riverton, prepare_drop, start_group, stop_group, two_district_registry

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def dagster_pg(pg_server_url):
    name = f"mtss_dagster_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(pg_server_url).set(database=name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_daemon_runs_two_districts_drops_concurrently_on_a_postgres_instance(tmp_path, pg_database, dagster_pg):
    pytest.importorskip("dagster_postgres")
    import dagster as dg

    registry = two_district_registry(tmp_path)
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry), MTSS_WAREHOUSE_URL=pg_database)
    prepare_drop(settings)
    add_riverton(settings)

    home = tmp_path / "dagster_home"
    home.mkdir()
    config = (REPO / "deploy" / "dagster.yaml").read_text().replace(
        "/var/lib/mtss/dagster/compute_logs", str(tmp_path / "compute_logs"))
    (home / "dagster.yaml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MTSS_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": dagster_pg.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
        "MTSS_HOME": str(settings.home),
        "MTSS_DISTRICTS_DIR": str(registry), "MTSS_WAREHOUSE_URL": pg_database,
    }
    daemon = start_group([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                         cwd=REPO, env=env, stdout=(log := open(tmp_path / "daemon.log", "wb")), stderr=log)
    old_env = dict(os.environ)
    os.environ.update({k: env[k] for k in env if k.startswith("DAGSTER_")})
    try:
        instance = dg.DagsterInstance.get()
        assert type(instance.run_storage).__name__ == "PooledPostgresRunStorage"
        assert type(instance.run_launcher).__name__ == "WarmRunLauncher"
        deadline = time.time() + float(os.environ.get("MTSS_TEST_DAEMON_WAIT", 240))
        runs = []
        while time.time() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "sftp_drop_sensor"}))
            if len(runs) == 2 and all(r.is_finished for r in runs):
                break
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(1)
        assert len(runs) == 2, (tmp_path / "daemon.log").read_text()[-3000:]
        assert {r.tags["mtss/district"] for r in runs} == {"belleville", "riverton"}
        failures = [_said(e) for r in runs for e in instance.all_logs(r.run_id) if e.dagster_event
                    and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE", "ENGINE_EVENT")
                    and r.status != dg.DagsterRunStatus.SUCCESS]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), "\n".join(
            [str([r.status for r in runs]), *failures])
        # each run in its own process, forked from the warm one (belleville_mtss/launcher.py): one parent for both
        started = [e.message for r in runs for e in instance.all_logs(r.run_id) if "forked from the warm" in e.message]
        assert len(started) == 2 and len({m.split("(pid: ")[1] for m in started}) == 2
        assert len({m.split("(pid: ")[2] for m in started}) == 1
        stats = [instance.get_run_stats(r.run_id) for r in runs]
        (a_start, a_end), (b_start, b_end) = [(s.start_time, s.end_time) for s in stats]
        assert a_start < b_end and b_start < a_end  # the two districts' runs overlapped
        assert set(instance.get_dynamic_partitions("drops")) == {"belleville/2026-11-01", "riverton/2026-11-15"}
        checks = [e for r in runs for e in instance.all_logs(r.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        # per run: 4 district checks, 4 gates, 3 replace checks, 3 checks on each of the 2 loads
        assert len(checks) == 2 * 19 and all(e.dagster_event.event_specific_data.passed for e in checks)
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        stop_group(daemon)
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text(
            'select "AccountInfoId", count(*) from dm."StudentRoster" group by 1')).all())
    engine.dispose()
    assert counts == {107873: SMALL.students, 555001: RIVERTON.students}


def _said(event) -> str:
    """An event's message, and for a failed step its error whole (the message alone names only the step)."""
    data = event.dagster_event.step_failure_data if event.dagster_event.is_step_failure else None
    return event.message + (f"\n{data.error.to_string()}" if data and data.error else "")
