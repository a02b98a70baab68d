"""Schema changes of our own tables, only through Alembic migrations a DBA can review (belleville_mtss/migrations).

`belleville-mtss warehouse upgrade` applies them; `--sql` prints them for a DBA; `warehouse current` says where a
database stands. A run never issues DDL: it checks the revision and refuses with one line naming the command,
except on the embedded SQLite default under MTSS_HOME, where we own everything and upgrade it ourselves.
"""
from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

SCRIPTS = Path(__file__).resolve().parents[2] / "migrations"
VERSION_TABLE = "MtssSchemaVersion"
# Revisions are numbered, and each file is named after its revision ("0003_gate_acceptances.py"): the head is the
# highest number, known without loading Alembic (a run only checks; a test holds Alembic's head to this).
HEAD = max(p.name[:4] for p in (SCRIPTS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


MIGRATE_WAIT_S = 120


class WarehouseNotReady(Exception):
    """The warehouse is not at the revision this code needs; the message names the command to run."""


def version_schema(dialect: str) -> str | None:
    return None if dialect == "sqlite" else "dm"


def dm() -> str | None:
    """The schema of our tables, for a migration: `dm`, or none on SQLite (which has no schemas)."""
    from alembic import op
    return version_schema(op.get_context().dialect.name)


def _config():
    from alembic.config import Config
    cfg = Config(output_buffer=io.StringIO())
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def head() -> str:
    return HEAD


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    table = sa.table(VERSION_TABLE, sa.column("version_num"), schema=version_schema(engine.dialect.name))
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE, schema=table.schema):
            return None
        return conn.execute(sa.select(table.c.version_num)).scalar()


@contextlib.contextmanager
def _migrating(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction for the whole migration, its DDL included (on SQLite, an engine of its own that says so:
    make_engine's `transactional_ddl`): a migration killed halfway leaves the database as it was."""
    from .warehouse import make_engine
    own = make_engine(engine.url.render_as_string(hide_password=False), transactional_ddl=True) \
        if engine.dialect.name == "sqlite" else engine
    try:
        with own.begin() as conn:
            yield conn
    finally:
        if own is not engine:
            own.dispose()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command
    cfg = _config()
    with _migrating(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


STAMPED_TABLES = ("StudentRoster", "AssessmentResults", "IngestionFiles")  # what every release since 0001 made


def stamp(engine: sa.Engine, revision: str) -> None:
    """Record that the tables an earlier release created are at `revision` (the baseline), without changing them.
    Never below what is recorded: the tables are there, and a lower stamp makes every later upgrade fail (a column
    added twice)."""
    from alembic import command
    from alembic.script import ScriptDirectory
    cfg = _config()
    at = current(engine)
    target = ScriptDirectory.from_config(cfg).get_revision(revision)  # any spelling: 0003, head, base (None)
    if at is not None and (target is None or target.revision < at):
        raise WarehouseNotReady(f"the warehouse is recorded at revision {at}, past {revision}: a stamp only "
                                "records tables an earlier release made and never takes the record back")
    inspector, schema = sa.inspect(engine), version_schema(engine.dialect.name)
    missing = [t for t in STAMPED_TABLES if not inspector.has_table(t, schema=schema)]
    if target is not None and missing:  # stamped anyway, every command after it failed on a table not there
        raise WarehouseNotReady(f"the warehouse holds no {', '.join(missing)}: a stamp only records tables an "
                                "earlier release made; an empty warehouse is made by `belleville-mtss warehouse "
                                "upgrade`")
    with _migrating(engine) as conn:
        cfg.attributes["connection"] = conn
        command.stamp(cfg, revision)


def upgrade_sql(dialect: str, start: str | None = None) -> str:
    """The DDL of every migration from `start` (or an empty database) to head, for a DBA to review and run."""
    from alembic import command
    cfg = _config()
    cfg.attributes["dialect"] = dialect
    command.upgrade(cfg, f"{start}:head" if start else "head", sql=True)
    script = cfg.output_buffer.getvalue()
    return guarded(script) if dialect == "mssql" else script


BATCH_MARK = "mtss_batch"
_GO = re.compile(r"^GO[ \t]*$", re.MULTILINE)


def guarded(script: str) -> str:
    """A T-SQL script that stops at its first failed batch whatever the client (sqlcmd without -b, SSMS): each batch
    records its number in the session when it ends; the next one starts by checking it, and where the previous
    batch did not end (a run-time error, which XACT_ABORT turns into a rollback, or a compile error, which it does
    not) it rolls back what is open and sets NOEXEC ON, so that nothing after it runs. The last batch turns NOEXEC
    off again and says whether the whole script ran."""
    batches = [b.strip() for b in _GO.split(script) if b.strip()]
    mark = "EXEC sys.sp_set_session_context @key = N'{0}', @value = {1};"
    out = [f"{batches[0]}\nSET NOEXEC OFF;\n{mark.format(BATCH_MARK, 1)}"]
    for number, batch in enumerate(batches[1:], start=2):
        out.append(f"{_stop_unless(number - 1)}\n{batch}\n{mark.format(BATCH_MARK, number)}")
    last = len(batches)
    out.append(f"SET NOEXEC OFF;\nIF ISNULL(CAST(SESSION_CONTEXT(N'{BATCH_MARK}') AS INT), 0) <> {last}\n"
               f"    RAISERROR(N'the script stopped before its end: nothing after the failed batch ran', 16, 1);")
    return "\n\nGO\n\n".join(out) + "\n\nGO\n"


def _stop_unless(previous: int) -> str:
    return (f"IF ISNULL(CAST(SESSION_CONTEXT(N'{BATCH_MARK}') AS INT), 0) <> {previous}\n"
            "BEGIN\n    IF @@TRANCOUNT > 0 ROLLBACK;\n"
            f"    RAISERROR(N'batch {previous} did not complete: stopping here, nothing after it runs', 16, 1);\n"
            "    SET NOEXEC ON;\nEND;")


def ahead(at: str | None) -> str | None:
    """Why a warehouse at revision `at` is past this release (None: it is not): a newer release upgraded it, and
    this one, older, cannot read its tables nor upgrade them ("can't locate revision")."""
    if at is None or at <= HEAD:
        return None
    return (f"schema revision {at} is past this release's {HEAD}: a newer release upgraded the warehouse; install "
            f"that release (or a newer one) rather than this one")


def require_current(engine: sa.Engine, where: str) -> None:
    """Refuse a warehouse that is not at head, in one line naming the command to run."""
    try:
        at = current(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise WarehouseNotReady(f"cannot read the schema version of the warehouse at {where} "
                                f"({type(getattr(exc, 'orig', None) or exc).__name__})") from None
    wanted = head()
    if past := ahead(at):
        raise WarehouseNotReady(f"the warehouse at {where}: {past}")
    if at != wanted:
        raise WarehouseNotReady(
            f"the warehouse at {where} is at schema revision {at or 'none'}, this release needs {wanted}: run "
            "`belleville-mtss warehouse upgrade` (or have your DBA apply `belleville-mtss warehouse upgrade --sql`)")


def open_warehouse(url: str, embedded: bool) -> sa.Engine:
    """An engine on the warehouse at head: migrated when it is the embedded default under MTSS_HOME (ours
    entirely), checked otherwise (WarehouseNotReady names the command to run)."""
    from .lock import beside, file_lock
    from .warehouse import make_engine
    engine, where = make_engine(url), sa.engine.make_url(url).render_as_string()
    try:
        if not embedded:
            require_current(engine, where)
        elif (at := current(engine)) != HEAD:  # the version read once a run, at head
            if past := ahead(at):  # upgraded by a newer release: nothing to upgrade to
                raise WarehouseNotReady(f"the warehouse at {where}: {past}")
            # one process migrates the embedded file; another starting at once waits, then finds it at head
            with file_lock(beside(engine, "migrate.lock"), MIGRATE_WAIT_S):
                if current(engine) != HEAD:
                    upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
