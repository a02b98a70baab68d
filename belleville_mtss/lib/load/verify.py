"""`belleville-mtss warehouse verify`: what a DBA checks once on the real server, as the runtime login.

The schema revision; each of our columns' type (and collation) against its declaration; on SQL Server that
READ_COMMITTED_SNAPSHOT is on; that the login holds exactly the grants of lib/load/grants.py, no fewer and no more;
and a Unicode name written and read back inside a transaction that is rolled back. Each finding is one line; a
problem says its fix. On PostgreSQL and SQLite it checks what applies there.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import sqlalchemy as sa

from . import migrations
from .grants import GRANTS, PG_SEQUENCES, Grant, quoted
from .warehouse import ingestion_errors, now, ours

# made-up, no student's: Vietnamese, Chinese, Arabic, Polish, an emoji and a character outside the BMP
UNICODE_SAMPLE = "Nguyễn Thị Ánh · 王小明 · محمد · Łukasz · 😀 · 𠮷"
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")  # those a server grants on a column (and REFERENCES, below)
PG_ONLY_PRIVILEGES = ("TRUNCATE", "REFERENCES", "TRIGGER")


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str  # a problem ends with its fix
    missing_grant: bool = False  # what a refused statement may have needed

    def line(self) -> str:
        return f"{'ok' if self.ok else 'PROBLEM'}: {self.text}"


def verify(warehouse: sa.Engine, prod: sa.Engine | None = None, account_info=None, classlink=None) -> list[Finding]:
    """`account_info`, `classlink`: where the other teams' tables are (lib/read/theirs.py; default: the mapping
    spec's names)."""
    from ..read.theirs import ACCOUNT_INFO, CLASSLINK_USERS

    findings = [_revision(warehouse)]
    with warehouse.connect() as conn:
        findings += _columns(conn)
        if conn.dialect.name == "mssql":
            findings.append(_snapshot_isolation(conn))
            findings.append(_lock_escalation(conn))
    for engine, database, spec in ((warehouse, "warehouse", account_info or ACCOUNT_INFO),
                                   (prod, "prod", classlink or CLASSLINK_USERS)):
        if engine is not None:
            where, problem = located(engine, spec)
            findings += [problem] if problem else []
            with engine.connect() as conn:
                findings += grants(conn, database, where)
    findings.append(_unicode_round_trip(warehouse))
    if findings[0].ok:  # our tables are there to try a load's steps on
        findings += [_bulk_copy_probe(warehouse), _district_lock_probe(warehouse)]
    return findings


def located(engine: sa.Engine, spec) -> tuple[dict[str, tuple[str | None, str]], Finding | None]:
    """Where another team's table is, as its grant names it: {"dm.AccountInfo": (schema, its own name)}; or the
    problem that it cannot be found (its grants are then not checked)."""
    from ..read.theirs import SourceTableError, resolve

    label = "dm.AccountInfo" if spec.setting == "MTSS_ACCOUNT_INFO_TABLE" else "dbo.ClassLinkUsers"
    try:
        table, _ = resolve(engine, spec)
    except SourceTableError as exc:
        return {label: (None, "")}, Finding(False, str(exc))
    return {label: (spec.schema, table.name)}, None


def _revision(engine: sa.Engine) -> Finding:
    at, wanted = migrations.current(engine), migrations.head()
    if at == wanted:
        return Finding(True, f"schema revision {at}")
    return Finding(False, f"schema revision {at or 'none'}, this release needs {wanted}: have the DBA apply "
                          "`belleville-mtss warehouse upgrade --sql` (or run `belleville-mtss warehouse upgrade`)")


def _schema(conn: sa.Connection, schema: str) -> str | None:
    return None if conn.dialect.name == "sqlite" else schema


def _columns(conn: sa.Connection) -> list[Finding]:
    inspector, dialect, wrong, missing = sa.inspect(conn), conn.dialect, [], []
    for table in ours.sorted_tables:
        name = f"{table.schema}.{table.name}"
        if not inspector.has_table(table.name, schema=_schema(conn, table.schema)):
            missing.append(name)
            continue
        found = {c["name"]: c["type"] for c in inspector.get_columns(table.name, schema=_schema(conn, table.schema))}
        for column in table.columns:
            want = column.type.compile(dialect=dialect)
            have = found[column.name].compile(dialect=dialect) if column.name in found else None
            if have and "COLLATE" not in want:  # a text column takes the database's collation: not ours to check
                have = have.split(" COLLATE ")[0]
            if have != want:
                wrong.append(Finding(False, f"{name}.{column.name} is {have or 'missing'}, expected {want}: have the "
                                            "DBA apply `belleville-mtss warehouse upgrade --sql` (or correct the column)"))
    if missing:
        wrong.append(Finding(False, f"missing table(s) {', '.join(missing)}: `belleville-mtss warehouse upgrade`"))
    counted = sum(len(t.columns) for t in ours.sorted_tables)
    return wrong or [Finding(True, f"{counted} columns of {len(ours.sorted_tables)} tables have their declared types"
                                   f"{' and collations' if dialect.name == 'mssql' else ''}")]


SNAPSHOT_SQL = ("SELECT is_read_committed_snapshot_on, snapshot_isolation_state_desc FROM sys.databases "
                "WHERE name = DB_NAME()")


def _snapshot_isolation(conn: sa.Connection) -> Finding:
    """Not a problem either way (a load's apply is one transaction: a reader never sees half of it), and RCSI is
    the whole database's, other teams' applications included: said, with what it changes (docs/deploy.md)."""
    rcsi, snapshot = conn.execute(sa.text(SNAPSHOT_SQL)).one()
    if rcsi:
        return Finding(True, "READ_COMMITTED_SNAPSHOT is on: reports read the last committed rows during a load")
    return Finding(True, f"READ_COMMITTED_SNAPSHOT is off (snapshot isolation {str(snapshot).lower()}): a report "
                         "reading dm.StudentRoster or dm.AssessmentResults waits for a load's apply to commit; "
                         "docs/deploy.md weighs turning it on, or ALLOW_SNAPSHOT_ISOLATION for those readers only")


# lock escalation each of our loaded tables should have (migrations 0007, 0009 and 0011; docs/deploy.md says why)
LOCK_ESCALATION = {"StudentRoster": "TABLE", "AssessmentResults": "TABLE", "AssessmentScores": "TABLE",
                   "StudentRosterStaging": "DISABLE", "AssessmentResultsStaging": "DISABLE",
                   "AssessmentScoresStaging": "DISABLE"}
LOCK_ESCALATION_SQL = ("SELECT name, lock_escalation_desc FROM sys.tables WHERE schema_id = SCHEMA_ID(N'dm') "
                       "AND name IN :names")


def _lock_escalation(conn: sa.Connection) -> Finding:
    statement = sa.text(LOCK_ESCALATION_SQL).bindparams(sa.bindparam("names", expanding=True))
    found = dict(conn.execute(statement, {"names": sorted(LOCK_ESCALATION)}).all())
    wrong = [f"dm.{t} is {found.get(t, 'missing')}, expected {want}" for t, want in LOCK_ESCALATION.items()
             if found.get(t) != want]
    if wrong:
        return Finding(False, f"lock escalation: {'; '.join(wrong)}: have the DBA apply `belleville-mtss warehouse "
                              "upgrade --sql` (migrations 0007, 0009 and 0011 set it)")
    return Finding(True, "lock escalation: TABLE on the loaded tables, DISABLE on the staging tables")


def _bulk_copy_probe(engine: sa.Engine) -> Finding:
    """One made-up roster row bulk-copied into staging the way a load copies (COPY on PostgreSQL, the driver's bulk
    copy on SQL Server), then deleted: what the grants above vouch for, tried."""
    from .warehouse import STAGING, _copy_into, new_load_id, student_roster, unstage
    import polars as pl
    staging, load_id = STAGING[student_roster.name], new_load_id()
    row = pl.DataFrame({"AccountInfoId": [0], "StudentNumber": ["verify"], "StarTestCount": [0],
                        "DropId": ["verify/probe"], "LoadedAt": [now()], "IsCurrent": [True], "LoadId": [load_id]})
    try:
        _copy_into(engine, staging, row)
        unstage(engine, load_id)
    except sa.exc.DBAPIError as exc:
        fix = " (see the grant lines above)" if lacks_a_grant(exc) else ""
        return Finding(False, f"a one-row bulk copy into {staging.fullname} and its removal failed "
                              f"({type(exc.orig).__name__}){fix}: a load would fail the same way", missing_grant=True)
    return Finding(True, f"a one-row bulk copy into {staging.fullname} was written and removed, as a load does")


def _district_lock_probe(engine: sa.Engine) -> Finding:
    from .lock import DistrictBusy, district_lock
    try:
        with district_lock(engine, 0, wait_s=5):  # district 0: no district's id, so no load waits on it
            pass
    except (DistrictBusy, NotImplementedError, sa.exc.DBAPIError) as exc:
        return Finding(False, f"the district lock could not be taken and released ({type(exc).__name__}): loads "
                              "would fail before writing; docs/deploy.md says what the lock needs")
    return Finding(True, "the district lock was taken and released, as each load does")


# what the login holds on a table (or one of its columns), as each server says it
_HAS = {
    ("postgresql", False): "SELECT has_table_privilege(current_user, :o, :p)",
    ("postgresql", True): "SELECT has_column_privilege(current_user, :o, :c, :p)",
    ("mssql", False): "SELECT HAS_PERMS_BY_NAME(:o, 'OBJECT', :p)",
    ("mssql", True): "SELECT HAS_PERMS_BY_NAME(:o, 'OBJECT', :p, :c, 'COLUMN')",
}


def _has(conn: sa.Connection, g: Grant, privilege: str, column: str | None = None) -> bool:
    dialect = conn.dialect.name
    obj = f"{g.schema}.{quoted(dialect)(g.table)}"
    params = {"o": obj, "p": privilege, **({"c": column} if column is not None else {})}
    return bool(conn.execute(sa.text(_HAS[(dialect, column is not None)]), params).scalar())


def grants(conn: sa.Connection, database: str = "warehouse",
           where: dict[str, tuple[str | None, str]] | None = None) -> list[Finding]:
    """The login's grants on our tables and theirs against lib/load/grants.py: one problem per grant missing or
    held beyond it (with the statement that fixes it). `where`: another team's table under its own name (`located`);
    an empty name skips it."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "mssql"):
        return [Finding(True, f"grants on the {database} database: not applicable on {dialect} (the database file's "
                              "permissions are the access control)")]
    user = conn.execute(sa.text("SELECT current_user")).scalar()
    problems, checked = [], 0
    q = quoted(dialect)
    extra = PG_ONLY_PRIVILEGES if dialect == "postgresql" else ()
    inspector = sa.inspect(conn)
    tables = {t.name: t for t in ours.sorted_tables}
    for g in (g for g in GRANTS if g.database == database):
        if f"{g.schema}.{g.table}" in (where or {}):
            schema, name = where[f"{g.schema}.{g.table}"]
            if not name:
                continue
            g = replace(g, schema=schema, table=name)
        obj = f"{g.schema}.{q(g.table)}"
        if not inspector.has_table(g.table, schema=g.schema):  # reported as missing above: no grant to check
            problems.append(Finding(False, f"grants on {obj} not checked: the table does not exist (see above)"))
            continue
        held = {}
        for privilege in (*TABLE_PRIVILEGES, *extra):
            want, have = privilege in g.privileges, _has(conn, g, privilege)
            held[privilege] = have
            checked += 1
            if want and not have:
                problems.append(Finding(False, f"{user} lacks {privilege} on {obj}: GRANT {privilege} ON {obj} TO {user}",
                                        missing_grant=True))
            elif have and not want:
                problems.append(Finding(False, f"{user} holds {privilege} on {obj}, which the code does not need: "
                                               f"REVOKE {privilege} ON {obj} FROM {user}"))
        # column by column, each privilege the table neither needs nor holds as a whole: a column-level grant
        # beyond the declared UPDATE columns is as much a problem as a table-wide one (our tables only: theirs are
        # read, and their columns are not ours to list)
        column_level = (*COLUMN_PRIVILEGES, *(("REFERENCES",) if dialect == "postgresql" else ()))
        partial = [p for p in column_level if not held[p] and p not in g.privileges]
        for privilege in partial if g.table in tables else ():
            for column in (c.name for c in tables[g.table].columns):
                want = privilege == "UPDATE" and column in g.update_columns
                have = _has(conn, g, privilege, column)
                checked += 1
                if want and not have:
                    problems.append(Finding(False, f"{user} lacks {privilege} ({q(column)}) on {obj}: "
                                                   f"GRANT {privilege} ({q(column)}) ON {obj} TO {user}",
                                            missing_grant=True))
                elif have and not want:
                    problems.append(Finding(False, f"{user} holds {privilege} on {obj}.{q(column)}, which the code "
                                                   f"does not need: REVOKE {privilege} ({q(column)}) ON {obj} FROM "
                                                   f"{user}"))
    if dialect == "postgresql" and database == "warehouse":
        for sequence in PG_SEQUENCES:
            if conn.execute(sa.text("SELECT to_regclass(:s)"), {"s": sequence}).scalar() is None:
                continue  # its table is reported missing above
            checked += 1
            if not conn.execute(sa.text("SELECT has_sequence_privilege(current_user, :s, 'USAGE')"),
                                {"s": sequence}).scalar():
                problems.append(Finding(False, f"{user} lacks USAGE on sequence {sequence}: "
                                               f"GRANT USAGE ON SEQUENCE {sequence} TO {user}", missing_grant=True))
    schema = "dm" if database == "warehouse" else "dbo"
    creates = schema in inspector.get_schema_names() and (conn.execute(sa.text("SELECT has_schema_privilege(current_user, :s, 'CREATE')"), {"s": schema}).scalar()
               if dialect == "postgresql" else
               conn.execute(sa.text("SELECT HAS_PERMS_BY_NAME(:s, 'SCHEMA', 'ALTER')"), {"s": schema}).scalar())
    if creates:
        problems.append(Finding(False, f"{user} may change schema {schema} (DDL): only migrations, run by an owner, "
                                       f"do; REVOKE {'CREATE ON SCHEMA ' if dialect == 'postgresql' else 'ALTER ON SCHEMA::'}"
                                       f"{schema} FROM {user}"))
    if problems or not checked:  # nothing checked: its tables' absence is reported, not a pass
        return problems
    return [Finding(True, f"{user} holds exactly the documented grants on the {database} database ({checked} checked)")]


def _unicode_round_trip(engine: sa.Engine) -> Finding:
    marker = f"verify-{uuid.uuid4().hex[:12]}"
    e = ingestion_errors.c
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            conn.execute(ingestion_errors.insert().values(OccurredAt=now(), Stage="verify", Reason="unicode",
                                                          Message=UNICODE_SAMPLE, RunId=marker))
            back = conn.execute(sa.select(e.Message).where(e.RunId == marker)).scalar()
        except sa.exc.DBAPIError as exc:
            return Finding(False, f"could not write a test row to dm.IngestionErrors ({type(exc.orig).__name__}): "
                                  "check the INSERT grant above")
        finally:
            tx.rollback()
    if back == UNICODE_SAMPLE:
        return Finding(True, "a Unicode name round-tripped exactly through dm.IngestionErrors.Message (rolled back)")
    return Finding(False, "a Unicode name came back changed from dm.IngestionErrors.Message: the column is not "
                          "Unicode (NVARCHAR) or the driver binds text as VARCHAR; apply migration 0006")


def lacks_a_grant(exc: sa.exc.DBAPIError) -> bool:
    """The server refused a statement for want of a privilege (PostgreSQL SQLSTATE 42501; SQL Server's
    'permission was denied', errors 229 and 230)."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "42501" or "permission was denied" in str(orig)


def load_failure(engine: sa.Engine, exc: sa.exc.DBAPIError) -> str:
    """One message for a load the database refused, without the server's detail (which can quote key values);
    where a grant is missing, the grants check's lines name it and its fix."""
    said = (f"loading the drop failed and was rolled back ({type(exc.orig).__name__}): neither its roster nor its "
            "results were written")
    if not lacks_a_grant(exc):
        return said
    try:
        from ..read.theirs import ACCOUNT_INFO
        where, _ = located(engine, ACCOUNT_INFO)
        with engine.connect() as conn:
            problems = [f.text for f in grants(conn, "warehouse", where) if f.missing_grant]
    except sa.exc.DBAPIError:
        problems = []
    return (f"{said}. The login lacks a grant the load needs (docs/security.md lists them; "
            f"`belleville-mtss warehouse verify` checks them): " + ("; ".join(problems) or "see the verify command"))
