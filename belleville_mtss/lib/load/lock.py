"""One district, one load at a time, on every path (the CLI, the UI, the daemon, any machine): a lock the warehouse
itself holds. PostgreSQL: a session advisory lock; SQL Server: `sp_getapplock` owned by the session; SQLite: a file
lock beside the database file. The second load of a district waits up to a bound, then stops with a plain message;
loads of different districts never wait on each other.

A load takes the lock on the connection that then runs its apply transaction (`conn`): the lock cannot be lost
while the apply goes on, since losing it means losing that session, which aborts the apply.
"""
from __future__ import annotations

import fcntl
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import sqlalchemy as sa

POLL_S = 0.2
# the first key of PostgreSQL's two-key advisory lock: ours, so another application's locks never collide with it
PG_LOCK_CLASS = zlib.crc32(b"belleville-mtss district load") & 0x7FFFFFFF


# The procedure's row counts kept out of the results (the one result is the SELECT's), and NOCOUNT set back before
# it: a SET run in a batch may last for the session (unless the driver runs the batch through sp_executesql), and
# the apply that follows on this connection counts the rows of its DELETE batches. Not run against a server here.
MSSQL_TRY = ("SET NOCOUNT ON; DECLARE @r int; EXEC @r = sp_getapplock @Resource = :r, @LockMode = 'Exclusive', "
             "@LockOwner = 'Session', @LockTimeout = 0; SET NOCOUNT OFF; SELECT @r")


class DistrictBusy(Exception):
    """Another load of the district held the lock for longer than the wait allowed; nothing was written."""


@contextmanager
def district_lock(engine: sa.Engine, account_info_id: int, wait_s: float,
                  conn: sa.Connection | None = None) -> Iterator[float]:
    """Holds the district's load lock for the block; yields the seconds waited for it. DistrictBusy after
    `wait_s` without it. On a server the lock is the session's of `conn` (no transaction may be open on it), or of a
    connection of its own."""
    started = time.monotonic()
    dialect = engine.dialect.name
    if dialect == "sqlite":
        if engine.url.database in (None, "", ":memory:"):  # one process's own database: nothing to share
            yield 0.0
            return
        with _file_lock(engine, account_info_id, wait_s, started):
            yield time.monotonic() - started
        return
    with (engine.connect() if conn is None else nullcontext(conn)) as session:
        while not _locked(session, dialect, account_info_id):
            if time.monotonic() - started >= wait_s:
                raise DistrictBusy(_busy(account_info_id, wait_s))
            time.sleep(POLL_S)
        try:
            yield time.monotonic() - started
        finally:
            try:
                _release(session, dialect, account_info_id)
                session.commit()
            except sa.exc.SQLAlchemyError:  # the session is gone, and its lock with it: nothing more to release
                pass


def _locked(session: sa.Connection, dialect: str, account_info_id: int) -> bool:
    """One try, in a transaction of its own: a session lock outlives the transaction that took it."""
    try:
        return _try(session, dialect, account_info_id)
    finally:
        session.commit()


def _try(conn: sa.Connection, dialect: str, account_info_id: int) -> bool:
    if dialect == "postgresql":
        return bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:c, :d)"),
                                 {"c": PG_LOCK_CLASS, "d": account_info_id}).scalar())
    if dialect == "mssql":
        got = conn.execute(sa.text(MSSQL_TRY), {"r": _resource(account_info_id)}).scalar()
        return got is not None and got >= 0
    raise NotImplementedError(f"no district lock for {dialect}")


def _release(conn: sa.Connection, dialect: str, account_info_id: int) -> None:
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_unlock(:c, :d)"), {"c": PG_LOCK_CLASS, "d": account_info_id})
    else:
        conn.execute(sa.text("EXEC sp_releaseapplock @Resource = :r, @LockOwner = 'Session'"),
                     {"r": _resource(account_info_id)})


def _resource(account_info_id: int) -> str:
    return f"belleville-mtss/district-load/{account_info_id}"


@contextmanager
def _file_lock(engine: sa.Engine, account_info_id: int, wait_s: float, started: float) -> Iterator[None]:
    path = beside(engine, f"district-{account_info_id}.lock")
    try:
        with file_lock(path, wait_s - (time.monotonic() - started)):
            yield
    except TimeoutError:
        raise DistrictBusy(_busy(account_info_id, wait_s)) from None


def beside(engine: sa.Engine, suffix: str) -> Path:
    """A file next to a SQLite engine's database file: `warehouse.db.<suffix>`."""
    database = Path(engine.url.database)
    return database.with_name(f"{database.name}.{suffix}")


@contextmanager
def file_lock(path: Path, wait_s: float) -> Iterator[None]:
    """An exclusive lock on `path` (created) for the block, between processes and threads alike (flock holds per
    open file); TimeoutError after `wait_s` without it."""
    started = time.monotonic()
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started >= wait_s:
                    raise TimeoutError(f"{path} stayed locked for {wait_s:g} s") from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _busy(account_info_id: int, wait_s: float) -> str:
    return (f"another load of the district (AccountInfoId {account_info_id}) held the warehouse's district lock "
            f"for more than {wait_s:g} s, so this one stopped before writing anything; run this drop again once "
            "that load has ended (MTSS_LOAD_LOCK_WAIT_SECONDS sets the wait)")
