"""The embedded instance's SQLite storages (belleville_mtss/instance_storage.py): a new home uses them, each process
makes one engine per database however many queries it runs, threads share it, and a home written before them still
opens with Dagster's own classes."""
import threading

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import ConsolidatedSqliteEventLogStorage

from belleville_mtss import instance_storage
from belleville_mtss.instance_storage import (PooledSqliteEventLogStorage, PooledSqliteRunStorage,
                                              PooledSqliteScheduleStorage)
from belleville_mtss.run import instance_for

from .conftest import make_settings

pytestmark = pytest.mark.persistent_instance  # the instance itself is what is tested


def _engines_under(path) -> list:
    return [key for key in instance_storage._ENGINES if str(path) in key[1]]


def test_a_new_home_keeps_one_engine_per_database_for_every_query(tmp_path):
    home = tmp_path / "mtss"
    instance = instance_for(make_settings(home))
    assert isinstance(instance.run_storage, PooledSqliteRunStorage)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    assert isinstance(instance.schedule_storage, PooledSqliteScheduleStorage)
    instance.add_dynamic_partitions("drops", ["a/1", "a/2"])
    for _ in range(50):
        assert instance.has_dynamic_partition("drops", "a/1")
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    assert len(_engines_under(home)) == 3  # runs.db, event_log.db, schedules.db: never one per query

    errors = []

    def add(n: int) -> None:
        try:
            instance.add_dynamic_partitions("drops", [f"t{n}/{i}" for i in range(20)])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(instance.get_dynamic_partitions("drops")) == 2 + 4 * 20
    # what was written is in the file, seen by a second instance (another process would open it the same way)
    other = dg.DagsterInstance.from_config(str(home / "dagster"))
    assert other.has_dynamic_partition("drops", "t3/19")


def test_a_home_written_with_dagsters_own_classes_still_opens(tmp_path):
    home = tmp_path / "mtss"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(
        "event_log_storage:\n  module: dagster._core.storage.event_log\n  class: ConsolidatedSqliteEventLogStorage\n"
        f"  config:\n    base_dir: {home / 'dagster' / 'history'}\n")
    instance = instance_for(make_settings(home))
    assert type(instance.event_log_storage) is ConsolidatedSqliteEventLogStorage  # the file is never rewritten
    instance.add_dynamic_partitions("drops", ["a/1"])
    assert instance.has_dynamic_partition("drops", "a/1")


def test_a_process_serving_many_homes_keeps_few_databases_open(tmp_path):
    urls = [f"sqlite:///{tmp_path / f'h{i}.db'}" for i in range(12)]
    engines = [instance_storage.engine_for(url) for url in urls]
    for engine in engines:
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
    kept = _engines_under(tmp_path)
    assert len(kept) == instance_storage._KEEP and kept[-1][1] == urls[-1]
    assert instance_storage.engine_for(urls[-1]) is engines[-1]  # the newest is reused, not made again


def test_threads_asking_for_more_databases_than_are_kept_each_get_an_engine(tmp_path):
    """The engines kept are shared by a process's threads (a run's, a webserver's): one kept past their number is
    let go while others ask (unlocked: the dictionary changed during the look for the oldest, a key taken twice)."""
    import sys
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switched as often as they can be: the race shows at once
    urls = [f"sqlite:///{tmp_path}/h{i}.db" for i in range(instance_storage._KEEP + 4)]
    errors = []

    def ask(k):
        for n in range(2000):
            try:
                instance_storage.engine_for(urls[(k * 7 + n) % len(urls)])
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(exc))
    try:
        threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and len(_engines_under(tmp_path)) <= instance_storage._KEEP


def test_a_partition_found_is_asked_for_again_only_after_a_while_and_one_deleted_here_is_gone_at_once(tmp_path,
                                                                                                     monkeypatch):
    instance = instance_for(make_settings(tmp_path / "mtss"))
    storage = instance.event_log_storage
    instance.add_dynamic_partitions("drops", ["a/1", "a/2"])
    asked = []
    real = ConsolidatedSqliteEventLogStorage.has_dynamic_partition
    monkeypatch.setattr(ConsolidatedSqliteEventLogStorage, "has_dynamic_partition",
                        lambda self, *key: asked.append(key) or real(self, *key))
    now = [1000.0]
    monkeypatch.setattr(instance_storage.time, "monotonic", lambda: now[0])
    for _ in range(20):
        assert storage.has_dynamic_partition("drops", "a/1") and not storage.has_dynamic_partition("drops", "b/1")
    assert asked.count(("drops", "a/1")) == 1 and asked.count(("drops", "b/1")) == 20  # a no is never kept
    other = dg.DagsterInstance.from_config(str(tmp_path / "mtss" / "dagster"))
    other.delete_dynamic_partition("drops", "a/1")  # another process's instance
    assert storage.has_dynamic_partition("drops", "a/1")  # still remembered ...
    now[0] += instance_storage.PARTITION_MEMORY_S
    assert not storage.has_dynamic_partition("drops", "a/1")  # ... for PARTITION_MEMORY_S at most
    assert storage.has_dynamic_partition("drops", "a/2")
    instance.delete_dynamic_partition("drops", "a/2")  # deleted here: gone at once
    assert not storage.has_dynamic_partition("drops", "a/2")
    # each table looked up once, then known
    assert {"dynamic_partitions"} <= storage.__dict__["_tables_seen"]


def test_the_asset_tables_columns_are_inspected_once_and_every_materialization_is_still_indexed(tmp_path,
                                                                                               monkeypatch):
    instance = instance_for(make_settings(tmp_path / "mtss"))
    asked = []
    real = ConsolidatedSqliteEventLogStorage._has_asset_key_col_on_connection
    monkeypatch.setattr(ConsolidatedSqliteEventLogStorage, "_has_asset_key_col_on_connection",
                        lambda self, conn, column: asked.append(column) or real(self, conn, column))
    run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
    for i in range(10):
        instance.report_runless_asset_event(dg.AssetMaterialization(f"asset_{i % 3}", metadata={"i": i}))
    assert asked == ["last_materialization_timestamp"]  # once, not once per event
    for i, key in ((9, "asset_0"), (7, "asset_1"), (8, "asset_2")):  # the asset table kept up to date
        latest = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert latest.asset_materialization.metadata["i"].value == i
    assert run.run_id


def test_the_production_instance_stores_a_runs_events_on_the_processs_pooled_connection(tmp_path, pg_database):
    """deploy/dagster.yaml's PostgreSQL storages (instance_storage_pg.py) as the daemon and a run load them: many
    events, look-ups and partition checks share the process's pooled engine, not a connection each
    (dagster-postgres's own)."""
    pytest.importorskip("dagster_postgres", reason="the deploy extra: pip install '.[deploy]'")
    import sqlalchemy as sa
    from belleville_mtss.instance_storage_pg import (PooledPostgresEventLogStorage, PooledPostgresRunStorage,
                                                     PooledPostgresScheduleStorage)
    from pathlib import Path
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "deploy" / "dagster.yaml").read_text())
    url = sa.engine.make_url(pg_database).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_PG_URL", url)
        instance = dg.DagsterInstance.from_config(str(home))
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        assert [type(s) for s in storages] == [PooledPostgresRunStorage, PooledPostgresEventLogStorage,
                                               PooledPostgresScheduleStorage]
        (engine,) = {s._engine for s in storages}  # one for the process and the database, whatever the storage
        opened, statements = [], []
        sa.event.listen(engine, "connect", lambda *_: opened.append(1))
        # the process's one engine serves the three storages: the schedule storage's own table checks, which
        # the loop below makes, are left out of the event log's statements counted after it
        sa.event.listen(engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *_: statements.append(statement))
        env.setattr(instance_storage.time, "monotonic", lambda: 1000.0)  # within PARTITION_MEMORY_S throughout
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
        instance.add_dynamic_partitions("drops", ["a/1"])
        for i in range(40):
            instance.report_engine_event(f"event {i}", run)
            assert instance.has_dynamic_partition("drops", "a/1")
            instance.all_instigator_state()
        assert len(instance.all_logs(run.run_id)) == 40 and instance.get_run_by_id(run.run_id) is not None
        assert len(opened) <= 3  # a connection per operation would be over 120
        partitions_asked, statements[:] = sum("FROM dynamic_partitions" in s for s in statements), []
        for i in range(40):
            instance.report_runless_asset_event(dg.AssetMaterialization(f"asset_{i % 3}", metadata={"i": i}))
            assert instance.has_dynamic_partition("drops", "a/1")
        # the partition, its table and the asset table's columns asked once each, as by the embedded storage
        assert partitions_asked + sum("FROM dynamic_partitions" in s for s in statements) == 1
        assert sum("pg_catalog" in s for s in statements) <= 4, [s for s in statements if "pg_catalog" in s]
        assert instance.get_latest_materialization_event(dg.AssetKey("asset_0")).asset_materialization \
            .metadata["i"].value == 39  # the asset table still kept up to date
        instance.delete_dynamic_partition("drops", "a/1")
        assert not instance.has_dynamic_partition("drops", "a/1")  # deleted here: gone at once
        # a column once found is answered without taking a connection (each taken is pinged: a round trip)
        taken = []
        sa.event.listen(instance.event_log_storage._engine, "checkout", lambda *_: taken.append(1))
        for _ in range(10):
            assert instance.event_log_storage.has_asset_key_col("last_materialization_timestamp")
        assert not taken
        instance.dispose()


def test_instances_made_and_disposed_one_after_another_share_the_processs_connection(tmp_path, pg_database):
    """A code server makes an instance at each sensor tick from the daemon's, and disposes it; Dagster disposes no
    storage's engine, so with an engine each, every tick's idle connections stayed open until the cycle collector
    freed that instance (off here: it may not come for minutes). One engine per URL and process: its one
    connection kept, whatever the ticks."""
    pytest.importorskip("dagster_postgres", reason="the deploy extra: pip install '.[deploy]'")
    import gc
    import sqlalchemy as sa
    from pathlib import Path
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "deploy" / "dagster.yaml").read_text())
    url = sa.engine.make_url(pg_database).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    # autocommit: within one transaction the server answers pg_stat_activity from its first look
    watcher = sa.create_engine(pg_database, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    count = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
                    "pg_backend_pid()")
    with pytest.MonkeyPatch.context() as env, watcher.connect() as conn:
        env.setenv("DAGSTER_PG_URL", url)
        daemon = dg.DagsterInstance.from_config(str(home))
        daemon.add_dynamic_partitions("drops", ["a/1"])
        seen = []
        gc.disable()
        try:
            for _tick in range(12):  # what the drop sensor asks at a tick
                with dg.SensorEvaluationContext(instance_ref=daemon.get_ref(), last_tick_completion_time=None,
                                                last_run_key=None, cursor=None, repository_name=None) as context:
                    context.instance.get_dynamic_partitions("drops")
                    context.instance.get_run_records(dg.RunsFilter(tags={"mtss/drop": "a/1"}), limit=1)
                    context.instance.all_instigator_state()
                seen.append(conn.execute(count).scalar())
        finally:
            gc.enable()
        daemon.dispose()
    watcher.dispose()
    assert max(seen) <= 2, seen  # an engine per storage and instance: 3 more a tick


def test_a_runs_events_reach_the_ui_as_another_process_commits_them(tmp_path):
    """The UI's live run log (`dagster dev` on the embedded home) watches the event log for changes. A commit
    changes the database file only at a checkpoint, which a connection kept open leaves to SQLite's auto-checkpoint
    (after about a thousand pages: a small drop's run never gets there): the write-ahead log is watched too."""
    import subprocess
    import sys
    import time
    home = tmp_path / "mtss"
    web = instance_for(make_settings(home))  # the webserver's instance
    run = web.create_run_for_job(dg.GraphDefinition("g").to_job())
    got = []
    web.watch_event_logs(run.run_id, None, lambda event, cursor: got.append(event.message))
    script = ("import sys, time; from pathlib import Path; from belleville_mtss.run import instance_for; "
              "from belleville_mtss_tests.conftest import make_settings; "
              "i = instance_for(make_settings(Path(sys.argv[1]))); run = i.get_run_by_id(sys.argv[2])\n"
              "for n in range(5): i.report_engine_event(f'step {n}', run); time.sleep(0.3)\n"
              "print('written', flush=True); time.sleep(30)")  # still running, its storage open
    writer = subprocess.Popen([sys.executable, "-c", script, str(home), run.run_id], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got == [f"step {n}" for n in range(5)]  # Dagster's watch of the database file alone: none
    finally:
        writer.kill()
        writer.wait()
        web.dispose()


def test_the_embedded_instance_flushes_at_checkpoints_and_a_killed_process_loses_nothing(tmp_path):
    """synchronous=NORMAL on the WAL databases (no disk flush on each of a run's commits); what a process
    committed before it was killed is there for the next."""
    import subprocess
    import sys
    import sqlalchemy as sa
    home = tmp_path / "mtss"
    instance = instance_for(make_settings(home))
    instance.add_dynamic_partitions("drops", ["a/1"])
    instance.get_runs(limit=1)
    instance.all_instigator_state()
    for key in _engines_under(home):
        with instance_storage._ENGINES[key].connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL (Dagster's own: 2, FULL)
    script = ("import os, signal, sys; from pathlib import Path; from belleville_mtss.run import instance_for; "
              "from belleville_mtss_tests.conftest import make_settings; "
              "i = instance_for(make_settings(Path(sys.argv[1]))); "
              "i.add_dynamic_partitions('drops', [f'k/{n}' for n in range(30)]); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", script, str(home)], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    again = dg.DagsterInstance.from_config(str(home / "dagster"))
    assert len(again.get_dynamic_partitions("drops")) == 31


def test_storages_a_killed_first_run_left_half_made_are_made_whole_by_the_next_run(tmp_path):
    """A first run killed as Dagster made the event log's database left a table without its migration records:
    every later run of every district failed ("requires the dynamic partitions table ... dagster instance
    migrate"). Until a home's storages are known whole, a run upgrades them."""
    import sqlite3
    from belleville_mtss.run import INSTANCE_WHOLE, dagster_home
    settings = make_settings(tmp_path / "mtss")
    instance_for(settings)
    home = dagster_home(settings)
    assert (home / INSTANCE_WHOLE).exists()
    # as the kill left it: the storages made in part, the mark never written
    (home / INSTANCE_WHOLE).unlink()
    with sqlite3.connect(home / "history" / "event_log.db") as db:
        db.execute("DROP TABLE dynamic_partitions")
        db.execute("DROP TABLE alembic_version")
    instance = instance_for(settings)
    instance.add_dynamic_partitions("drops", ["belleville/2026-11-01"])
    assert instance.get_dynamic_partitions("drops") == ["belleville/2026-11-01"]
    assert (home / INSTANCE_WHOLE).exists()
