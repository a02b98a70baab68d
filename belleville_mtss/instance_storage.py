"""Dagster's SQLite storages for the embedded default (runs, one event-log database, schedules and sensor
cursors), each holding one SQLAlchemy engine per process instead of making one for every query.

Dagster's own SQLite classes create an engine, open a connection and close it on every read and write. Closing the
last connection to a WAL database makes SQLite checkpoint the log; with a new engine SQLAlchemy also re-inspects the
database each time. A 19-step drop run stores about 250 events and checks its partition about 270 times: on this
machine that was half the run's wall time (benchmarks/small_drop.py). Here a pool keeps one connection open, so
closes are cheap and the checkpoint happens when the log grows (SQLite's own auto-checkpoint). Same files, same
tables, same migrations: an instance can switch to or from these classes in its dagster.yaml at any time.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import sqlalchemy as sa
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

_ENGINES: dict[tuple[int, str], sa.Engine] = {}  # oldest first
_ENGINES_LOCK = threading.Lock()  # a run's threads and a webserver's ask at once
PARTITION_MEMORY_S = 5.0  # how long a partition found stays found without asking again
_KEEP = 8  # engines (open databases) kept per process: a process serving many homes (a test run) keeps its files few


def engine_for(conn_string: str) -> sa.Engine:
    """One engine per database file and process (a forked child makes its own: connections are not shared across
    processes). One connection stays open; more are opened when threads need them and closed when returned."""
    key = (os.getpid(), conn_string)
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(key, None)
        if engine is None:
            engine = sa.create_engine(conn_string, poolclass=sa.pool.QueuePool, pool_size=1, max_overflow=-1,
                                      connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                    "check_same_thread": False})
            sa.event.listen(engine, "connect", _wal_synced_at_checkpoints)
        _ENGINES[key] = engine  # now the newest
        while len(_ENGINES) > _KEEP:
            _ENGINES.pop(next(iter(_ENGINES))).dispose()  # its idle connection closed; one in use, once released
    return engine


def _wal_synced_at_checkpoints(dbapi_connection, _record) -> None:
    """Dagster makes these databases WAL with synchronous=FULL: a disk flush on each of a run's ~750 commits.
    NORMAL flushes at checkpoints: a crash of the process loses nothing and nothing is ever corrupted; a power
    loss may lose the last events written before it (https://www.sqlite.org/pragma.html#pragma_synchronous)."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


@contextmanager
def _transaction(conn_string: str):
    with engine_for(conn_string).connect() as conn, conn.begin():
        yield conn


class PooledSqliteRunStorage(SqliteRunStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):  # Dagster's own builds SqliteRunStorage, not cls
        return cls.from_local(inst_data=inst_data, **config_value)

    def connect(self):
        return _transaction(self._conn_string)


class AnswersKept:
    """What Dagster's event-log storage asks the database over and over in a run, answered from what this process
    already found; for the embedded instance's storage and the production one (instance_storage_pg.py) alike. Put
    before the storage class it serves."""

    def _yes_kept(self, seen: str, key, ask) -> bool:
        """`ask()`, unless it said yes for `key` before in this process: for what the instance only ever adds
        (tables, columns). A no is asked again, so what another process adds later is seen."""
        known = self.__dict__.setdefault(seen, set())
        if key not in known:
            if not ask():
                return False
            known.add(key)
        return True

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before each partition look-up (about 600 times a drop run), and the embedded storage
        answers on a new engine every time. A table once made is never dropped by the instance."""
        return self._yes_kept("_tables_seen", table_name, lambda: super(AnswersKept, self).has_table(table_name))

    def has_asset_key_col(self, column_name: str) -> bool:
        """As below, without taking a connection for a column already found (a production storage's connection
        is checked with a round trip to the server each time it is taken)."""
        return column_name in self.__dict__.get("_asset_key_cols_seen", ()) or super().has_asset_key_col(column_name)

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        """Dagster asks for the asset table's columns on every asset event (about 120 a drop run), each an
        inspection of the table. Migrations add columns and never drop them."""
        return self._yes_kept("_asset_key_cols_seen", column_name, lambda: super(
            AnswersKept, self)._has_asset_key_col_on_connection(conn, column_name))

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        """A drop run checks its partition about 550 times, a query each. A yes is kept for PARTITION_MEMORY_S: a
        partition deleted by this process is forgotten at once, one deleted by another (expired drops,
        defs/maintenance.py) is seen as gone at most that late."""
        seen, key, now = self.__dict__.setdefault("_partitions_seen", {}), (partitions_def_name, partition_key), \
            time.monotonic()
        if now - seen.get(key, -PARTITION_MEMORY_S) < PARTITION_MEMORY_S:
            return True
        if super().has_dynamic_partition(partitions_def_name, partition_key):
            seen[key] = now
            return True
        seen.pop(key, None)
        return False

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self.__dict__.get("_partitions_seen", {}).pop((partitions_def_name, partition_key), None)
        super().delete_dynamic_partition(partitions_def_name, partition_key)


class _LogWatch(PatternMatchingEventHandler):
    """The event log's database or its write-ahead log changed: a run's events reach a watcher (the UI's live run
    log) as they are committed. Dagster's watches the database file alone, which a commit changes only when the
    log is checkpointed: at every close with Dagster's own classes, at SQLite's auto-checkpoint with the connection
    kept open here."""

    def __init__(self, storage: "PooledSqliteEventLogStorage"):
        self._storage = storage
        path = storage.get_db_path()
        super().__init__(patterns=[path, f"{path}-wal"])

    def on_modified(self, event) -> None:
        self._storage.on_modified()


class PooledSqliteEventLogStorage(AnswersKept, ConsolidatedSqliteEventLogStorage):
    def _connect(self):
        return _transaction(self._conn_string)

    def watch(self, run_id, cursor, callback) -> None:  # as Dagster's, with _LogWatch
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
            self._obs.schedule(_LogWatch(self), self._base_dir, recursive=True)
        self._watchers[run_id][callback] = cursor


class PooledSqliteScheduleStorage(SqliteScheduleStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):  # as above, for SqliteScheduleStorage
        return cls.from_local(inst_data=inst_data, **config_value)

    def connect(self):
        return _transaction(self._conn_string)
