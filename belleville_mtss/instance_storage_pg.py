"""Dagster's PostgreSQL storages (the production instance, deploy/dagster.yaml) sharing one pooled engine per
process instead of opening a new connection for every read and write.

dagster-postgres uses no connection pool outside the webserver: each event a run stores, each run or partition it
looks up, is a new PostgreSQL connection (a new server process, its authentication and catalog caches). A drop's
run stores about 350 events; with many districts' runs at once that was most of the machine's time
(benchmarks/daemon_districts.py, docs/performance.md). The event-log storage also keeps the answers the embedded
one keeps (instance_storage.py `AnswersKept`). Same tables, same migrations, same configuration keys as
dagster-postgres's classes: an instance can switch to or from these in its dagster.yaml at any time. Needs the
`deploy` extra (dagster-postgres).
"""
from __future__ import annotations

import os
import threading

import sqlalchemy as sa
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from .instance_storage import AnswersKept

POOL = {"pool_size": 1,  # one connection kept open; a thread that needs another opens it and closes it after
        "max_overflow": 8, "pool_pre_ping": True,  # one the server has dropped (a restart) is replaced, not used
        "pool_recycle": 3600}


_ENGINES: dict[tuple[int, str], sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str) -> sa.Engine:
    """One pooled engine per database URL and process, for every instance the process makes: a code server makes
    and disposes one at each sensor tick, and Dagster disposes no storage's engine (nor the schedule storage at
    all), so an engine each held its idle connection until the cycle collector came by (docs/deploy.md). A forked
    child makes its own."""
    key = (os.getpid(), url)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = create_pg_engine(url, None, isolation_level="AUTOCOMMIT", **POOL)
        return _ENGINES[key]


class _Pooled:
    """Replaces the storage's engine, made without a pool, by the process's pooled one (after the tables are
    checked). Not where a token provider authenticates each connection: each instance keeps dagster-postgres's own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._token_provider is None:
            self._engine.dispose()
            self._engine = _engine(self.postgres_url)

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # dagster-postgres's builds its own class, not cls
        return cls(inst_data=inst_data, postgres_url=pg_url_from_config(config_value),
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))


class PooledPostgresRunStorage(_Pooled, PostgresRunStorage):
    pass


class PooledPostgresEventLogStorage(AnswersKept, _Pooled, PostgresEventLogStorage):
    pass


class PooledPostgresScheduleStorage(_Pooled, PostgresScheduleStorage):
    pass
