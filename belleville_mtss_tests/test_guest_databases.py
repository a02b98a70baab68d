"""A guest in databases others own: migrations for our tables only, the least privilege the docs list, their tables
read (never written) in their own case, only the drop's ClassLink tenant, and an audit that keeps history."""
from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from belleville_mtss.cli import main
from belleville_mtss.lib.load import grants, migrations
from belleville_mtss.lib.load.verify import verify
from belleville_mtss.lib.read.theirs import SourceTableError, read_classlink_students
from belleville_mtss.lib.config import load_settings
from belleville_mtss.lib.sample import account_info_rows, generate_drop, load_databases, migrate_sample_warehouse
from belleville_mtss.lib.load.warehouse import (
    STAGING, account_info, class_link_users, count_rows, ingestion_files, make_engine, ours, read_table, student_roster,
    theirs,
)
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import SMALL, errors, numbers_in, prepare_drop, set_column, warehouse_counts

REPO = Path(__file__).resolve().parent.parent
DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|TRUNCATE|GRANT|REVOKE)\b", re.I)


def _head_equals_declarations(engine: sa.Engine) -> list:
    """What autogenerate would change to make the database equal warehouse.py's declarations (nothing, we want)."""
    sqlite = engine.dialect.name == "sqlite"
    target = sa.MetaData()
    for table in ours.sorted_tables:
        table.to_metadata(target, schema=None if sqlite else table.schema)

    def ours_only(obj, name, kind, reflected, compare_to):
        return not (kind == "table" and name == migrations.VERSION_TABLE)

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": not sqlite, "include_object": ours_only,
            "include_name": lambda name, kind, parent: kind != "schema" or name in ("dm", None)})
        return compare_metadata(context, target)


def _fresh(url: str) -> sa.Engine:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema("dm", if_not_exists=True))
    return engine


@contextmanager
def _statements(url: str):
    """Every SQL statement sent to the database at `url` while the block runs."""
    seen: list[str] = []
    target = sa.engine.make_url(url)

    def listen(conn, cursor, statement, parameters, context, executemany):
        if conn.engine.url.database == target.database and conn.engine.url.drivername == target.drivername:
            seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)


# ---- migrations ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_from_empty_reach_head_and_equal_the_declared_tables(tmp_path, backend, request):
    url = f"sqlite:///{tmp_path}/w.db" if backend == "sqlite" else request.getfixturevalue("pg_database")
    engine = _fresh(url)
    assert migrations.current(engine) is None
    migrations.upgrade(engine)
    assert migrations.current(engine) == migrations.head()
    assert _head_equals_declarations(engine) == []
    names = set(sa.inspect(engine).get_table_names(schema=None if backend == "sqlite" else "dm"))
    assert names == {"StudentRoster", "AssessmentResults", "IngestionErrors", "IngestionFiles", "GateAcceptances",
                     "StudentRosterStaging", "AssessmentResultsStaging", "LinkSuggestions", "LinkDecisions",
                     "AssessmentScores", "AssessmentScoresStaging",
                     migrations.VERSION_TABLE}  # theirs are never created by a migration
    indexes = {i["name"] for t in ("AssessmentResults", "IngestionFiles", "IngestionErrors", "StudentRoster")
               for i in sa.inspect(engine).get_indexes(t, schema=None if backend == "sqlite" else "dm")}
    assert {"IX_AssessmentResults_Student", "IX_AssessmentResults_Drop", "IX_IngestionFiles_Sha256",
            "IX_IngestionFiles_Drop", "IX_IngestionErrors_Drop", "IX_StudentRoster_Drop"} <= indexes
    engine.dispose()


def _earlier_revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrations._config())
    return [r.revision for r in script.walk_revisions() if r.revision != migrations.head()]


@pytest.mark.parametrize("start", _earlier_revisions())
def test_migrations_from_each_earlier_revision_keep_the_data(pg_database, start):
    engine = _fresh(pg_database)
    migrations.upgrade(engine, start)
    import datetime as dt
    when = dt.datetime(2026, 10, 1, 8, 30)
    # the audit rows in the shape that revision gave them
    columns = {c["name"] for c in sa.inspect(engine).get_columns("IngestionFiles", schema="dm")}
    files = sa.table("IngestionFiles", *[sa.column(c) for c in columns], schema="dm")
    with engine.begin() as conn:
        conn.execute(files.insert(), [{k: v for k, v in {
            "DropId": "belleville/2026-10-01", "FileName": name, "DistrictId": 107873, "Sha256": name * 4,
            "SizeBytes": 10, "DropVersion": "v1", "ReceivedAt": when, "Outcome": "received", "OutcomeAt": when,
        }.items() if k in columns} for name in ("SR.csv", "students.csv")])
        conn.execute(student_roster.insert(), [{
            "AccountInfoId": 107873, "StudentNumber": "210001", "StarTestCount": 2, "DropId": "belleville/2026-10-01",
            "LoadedAt": when}])
    migrations.upgrade(engine)
    assert migrations.current(engine) == migrations.head()
    files = read_table(engine, ingestion_files).sort("FileName")
    assert files.select("DropId", "FileName", "Outcome", "OutcomeAt", "ReceivedAt").rows() == [
        ("belleville/2026-10-01", "SR.csv", "received", when, when),
        ("belleville/2026-10-01", "students.csv", "received", when, when)]
    assert files["FileId"].null_count() == 0 and files["FileId"].n_unique() == 2
    assert read_table(engine, student_roster)["StudentNumber"].to_list() == ["210001"]
    assert _head_equals_declarations(engine) == []
    engine.dispose()


def test_sql_for_a_dba_compiles_for_sql_server_and_runs_on_postgresql(pg_database, tmp_path, capsys):
    assert main(["warehouse", "upgrade", "--sql", "--dialect", "mssql"]) == 0
    mssql = capsys.readouterr().out
    for expected in ("CREATE TABLE dm.[StudentRoster]", "CREATE TABLE dm.[MtssSchemaVersion]", "IDENTITY",
                     "CREATE INDEX [IX_AssessmentResults_Student] ON dm.[AssessmentResults]",
                     "INSERT INTO dm.[MtssSchemaVersion]"):
        assert expected in mssql, expected
    for never in ("[AccountInfo]", "[ClassLinkUsers]", "dbo.", "CREATE SCHEMA", "DROP SCHEMA"):
        assert never not in mssql, never  # theirs and the schemas are never ours to change
    assert main(["warehouse", "upgrade", "--sql", "--dialect", "postgresql"]) == 0
    script = tmp_path / "upgrade.sql"
    script.write_text(capsys.readouterr().out)
    engine = _fresh(pg_database)
    url = sa.engine.make_url(pg_database)
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    done = subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-q", "-h", url.host, "-p", str(url.port), "-U",
                           url.username, "-d", url.database, "-f", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert migrations.current(engine) == migrations.head()
    assert _head_equals_declarations(engine) == []
    engine.dispose()


def test_the_postgresql_script_applies_nothing_after_a_failed_statement_even_without_on_error_stop(
        pg_database, tmp_path):
    # one transaction for the whole script: a failure aborts it and the final COMMIT rolls everything back, in psql
    # without ON_ERROR_STOP as in any client that sends the statements one after another
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed (Debian's postgresql-client)")
    script = tmp_path / "upgrade.sql"
    script.write_text(migrations.upgrade_sql("postgresql"))
    engine = _fresh(pg_database)
    with engine.begin() as conn:  # what makes revision 0008 fail half-way through the script
        conn.execute(sa.text('CREATE TABLE dm."LinkDecisions" (x int)'))
    url = sa.engine.make_url(pg_database)
    done = subprocess.run([psql, "-q", "-h", url.host, "-p", str(url.port), "-U", url.username, "-d", url.database,
                           "-f", str(script)], capture_output=True, text=True)
    assert done.returncode == 0 and 'relation "LinkDecisions" already exists' in done.stderr  # psql went on
    assert migrations.current(engine) is None
    assert set(sa.inspect(engine).get_table_names(schema="dm")) == {"LinkDecisions"}  # nothing else was applied
    engine.dispose()


def test_warehouse_current_and_upgrade_commands(pg_database, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", pg_database)
    engine = _fresh(pg_database)
    migrations.upgrade(engine, "0001")
    assert main(["warehouse", "current"]) == 1
    assert "schema revision 0001; this release needs" in capsys.readouterr().out
    assert main(["warehouse", "upgrade"]) == 0
    assert f"0001 -> {migrations.head()}" in capsys.readouterr().out
    assert main(["warehouse", "current"]) == 0
    assert "(up to date)" in capsys.readouterr().out
    engine.dispose()


def test_a_run_against_a_warehouse_behind_the_code_refuses_in_one_line(tmp_path, pg_database):
    settings = make_settings(tmp_path / "home", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    prepare_drop(settings)
    engine = make_engine(pg_database)
    with engine.begin() as conn:  # as if a newer release were installed before the DBA applied its migration
        conn.execute(sa.text(f'UPDATE dm."{migrations.VERSION_TABLE}" SET version_num = \'0001\''))
    engine.dispose()
    report = run_drop(settings)
    assert not report.success
    assert "run `belleville-mtss warehouse upgrade`" in report.verdict() and "\n" not in report.verdict()
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}


def test_a_run_issues_no_ddl(tmp_path, pg_database):
    settings = make_settings(tmp_path / "home", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    prepare_drop(settings)
    with _statements(pg_database) as seen:
        report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    assert len(seen) > 10
    assert [s for s in seen if DDL.match(s)] == []


# ---- least privilege -------------------------------------------------------------------------------------------

def _docs_block(marker: str) -> str:
    text = (REPO / "docs" / "security.md").read_text()
    block = text.split(f"<!-- grants:{marker} -->", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    return "\n".join(line.strip() for line in block.strip().splitlines()) + "\n"


def test_security_md_shows_the_grants_the_code_declares():
    for dialect in ("postgresql", "mssql"):
        assert _docs_block(dialect) == grants.statements(dialect)
    text = (REPO / "docs" / "security.md").read_text()
    assert text.split("<!-- grants:table -->\n", 1)[1].split("<!-- /grants:table -->", 1)[0] == grants.markdown_table()


def _runtime_role(admin: sa.Engine, database: str, role: str) -> None:
    """A login holding exactly the documented PostgreSQL grants (both databases' parts in one test database)."""
    script = grants.statements("postgresql", role, f'"{database}"', f'"{database}"')
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        for statement in (s for s in script.split(";") if s.strip()):
            conn.execute(sa.text("\n".join(x for x in statement.splitlines() if not x.startswith("--"))))


def test_a_role_with_exactly_the_documented_grants_materializes_a_whole_drop(tmp_path, pg_database, monkeypatch,
                                                                            capsys):
    admin_url = sa.engine.make_url(pg_database)
    prepare_drop(make_settings(tmp_path / "admin", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database))
    role = f"mtss_rt_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    _runtime_role(admin, admin_url.database, role)
    try:
        runtime = admin_url.set(username=role).render_as_string(hide_password=False)
        home = tmp_path / "admin"  # the same drop folder; the run's own home
        settings = make_settings(home, MTSS_WAREHOUSE_URL=runtime, MTSS_PROD_DB_URL=runtime)
        report = run_drop(settings)
        assert report.success and report.checks_passed, report.render()
        assert warehouse_counts(settings)["roster"] == SMALL.students
        logged = errors(settings)
        assert "unknown_student" in set(logged["Reason"])  # the error log is written by the runtime role
        with admin.connect() as conn:  # and it could not have changed anything else
            assert conn.execute(sa.text("select has_schema_privilege(:r, 'dm', 'CREATE')"), {"r": role}).scalar() is False
            assert conn.execute(sa.text('select has_table_privilege(:r, \'dm."AccountInfo"\', \'INSERT\')'),
                                {"r": role}).scalar() is False
        assert read_table(make_engine(runtime), ingestion_files).height == 4  # identity columns need no grant
        monkeypatch.setenv("MTSS_HOME", str(home))
        monkeypatch.setenv("MTSS_WAREHOUSE_URL", runtime)
        monkeypatch.setenv("MTSS_PROD_DB_URL", runtime)
        assert main(["warehouse", "verify"]) == 0, capsys.readouterr().out
        out = capsys.readouterr().out
        assert f"ok: {role} holds exactly the documented grants on the warehouse database" in out
        assert "ok: a Unicode name round-tripped exactly" in out and "PROBLEM" not in out

        with admin.connect() as conn:  # one grant fewer
            conn.execute(sa.text(f'REVOKE DELETE ON dm."AssessmentResults" FROM "{role}"'))
        assert main(["warehouse", "verify"]) == 1
        out = capsys.readouterr().out
        fix = f'GRANT DELETE ON dm."AssessmentResults" TO {role}'
        assert [line for line in out.splitlines() if line.startswith("PROBLEM")] == [
            f'PROBLEM: {role} lacks DELETE on dm."AssessmentResults": {fix}']
        before = warehouse_counts(settings)
        report = run_drop(settings)  # a replay: the load needs that DELETE
        assert not report.success
        assert "lacks a grant the load needs" in report.verdict() and fix in report.verdict(), report.verdict()
        assert warehouse_counts(settings) == before  # rolled back whole
        staged = make_engine(pg_database)
        assert [count_rows(staged, t) for t in STAGING.values()] == [0, 0, 0]  # its staged rows were deleted
        staged.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_verify_names_a_column_of_the_wrong_type_and_holds_on_sqlite(tmp_path, pg_database, monkeypatch, capsys):
    engine = _fresh(pg_database)
    migrations.upgrade(engine)
    def types(engine):  # as the owner, who holds more grants than the runtime login: only the type findings
        return [f.text for f in verify(engine) if not f.ok and " expected " in f.text]

    assert types(engine) == []
    with engine.begin() as conn:
        conn.execute(sa.text('ALTER TABLE dm."AssessmentResults" ALTER COLUMN "Grade" TYPE text'))
    assert types(engine) == ["dm.AssessmentResults.Grade is TEXT, expected VARCHAR(12): have the DBA apply "
                        "`belleville-mtss warehouse upgrade --sql` (or correct the column)"]
    engine.dispose()
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MTSS_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("MTSS_PROD_DB_URL", raising=False)
    prepare_drop(load_settings())  # the embedded default, with the sample's AccountInfo and ClassLink users
    assert main(["warehouse", "verify"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "ok: grants on the warehouse database: not applicable on sqlite" in out and "ok: schema revision" in out


def test_verify_on_a_database_that_is_not_ours_lists_what_is_missing_and_writes_nothing(pg_database, monkeypatch,
                                                                                      capsys, tmp_path):
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", pg_database)
    monkeypatch.setenv("MTSS_PROD_DB_URL", pg_database)
    assert main(["warehouse", "verify"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: schema revision none" in out and "PROBLEM: missing table(s) dm.AssessmentResults" in out
    assert "dbo.ClassLinkUsers was not found" in out and "ok:" not in out
    engine = make_engine(pg_database)
    assert sa.inspect(engine).get_schema_names() == ["information_schema", "public"]  # nothing was created
    engine.dispose()


# ---- theirs: read only, in their case, only the drop's tenant ----------------------------------------------

def _their_counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = (conn.execute(sa.select(sa.func.count()).select_from(account_info)).scalar(),
                  conn.execute(sa.select(sa.func.count()).select_from(class_link_users)).scalar())
    engine.dispose()
    return counts


def test_demo_and_generate_load_refuse_a_database_that_is_not_the_embedded_default(tmp_path, pg_database,
                                                                                   monkeypatch, capsys):
    tables = generate_drop(tmp_path / "theirs-drop", SMALL)
    load_databases(pg_database, pg_database, tables["classlink_users"])  # their tables, as their teams keep them
    before = _their_counts(pg_database)
    home = tmp_path / "home"
    monkeypatch.setenv("MTSS_HOME", str(home))
    cases = [{"MTSS_WAREHOUSE_URL": pg_database}, {"MTSS_PROD_DB_URL": pg_database},
             {"MTSS_WAREHOUSE_URL": f"sqlite:///{tmp_path}/elsewhere.db"}]
    for env in cases:
        for var in ("MTSS_WAREHOUSE_URL", "MTSS_PROD_DB_URL"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        for argv in (["demo", "--students", "50"], ["generate", "--students", "50", "--out", str(tmp_path / "g"),
                                                    "--load"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert "nothing was changed" in err and next(iter(env)) in err, err
            assert _their_counts(pg_database) == before
    assert not (home / "drops").exists() and not (tmp_path / "elsewhere.db").exists()


def test_lower_case_source_tables_made_by_a_dba_are_found(tmp_path, pg_database):
    settings = make_settings(tmp_path / "home", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    tables = generate_drop(settings.drop_dir / "belleville" / SMALL.drop_name, SMALL)
    engine = make_engine(pg_database)
    with engine.begin() as conn:  # what a DBA's unquoted DDL makes: every name folded to lower case
        conn.execute(sa.text("CREATE SCHEMA dm; CREATE SCHEMA dbo; "
                             "CREATE TABLE dm.accountinfo (accountinfoid integer primary key, ncesid varchar(7), "
                             "districtname varchar(200) not null, state varchar(2) not null, county varchar(100)); "
                             "CREATE TABLE dbo.classlinkusers (userid varchar(64) primary key, tenantid integer, "
                             "tenantname varchar(200), role varchar(32), email varchar(320))"))
        lower_ai = sa.table("accountinfo", *[sa.column(c.lower()) for c in account_info.c.keys()], schema="dm")
        conn.execute(lower_ai.insert(), [{k.lower(): v for k, v in r.items()} for r in account_info_rows()])
        cl = tables["classlink_users"].select("UserId", "TenantId", "TenantName", "Role", "Email")
        lower_cl = sa.table("classlinkusers", *[sa.column(c.lower()) for c in cl.columns], schema="dbo")
        conn.execute(lower_cl.insert(), [{k.lower(): v for k, v in r.items()} for r in cl.to_dicts()])
    migrate_sample_warehouse(engine)
    engine.dispose()
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    assert warehouse_counts(settings)["roster"] == SMALL.students
    names = set(sa.inspect(make_engine(pg_database)).get_table_names(schema="dm"))
    assert "AccountInfo" not in names  # nothing was created beside the DBA's table


def test_source_tables_under_other_names_are_read_as_configured(tmp_path):
    settings = make_settings(tmp_path / "home")
    prepare_drop(settings)
    engine = make_engine(settings.warehouse_url)
    with engine.begin() as conn:  # the warehouse team calls its table Districts, with its own column names
        conn.execute(sa.text('ALTER TABLE "AccountInfo" RENAME TO "Districts"'))
        conn.execute(sa.text('ALTER TABLE "Districts" RENAME COLUMN "DistrictName" TO "Name"'))
        conn.execute(sa.text('ALTER TABLE "Districts" RENAME COLUMN "AccountInfoId" TO "Id"'))
    engine.dispose()
    assert not run_drop(settings).success  # not found until configured
    configured = make_settings(tmp_path / "home", MTSS_ACCOUNT_INFO_TABLE="dm.Districts",
                               MTSS_ACCOUNT_INFO_COLUMNS="DistrictName=Name, AccountInfoId=Id")
    report = run_drop(configured)
    assert report.success and report.checks_passed, report.render()


@pytest.mark.parametrize(("table", "url_attr", "variable"), [
    (account_info, "warehouse_url", "MTSS_ACCOUNT_INFO_TABLE"),
    (class_link_users, "prod_db_url", "MTSS_CLASSLINK_TABLE"),
])
def test_a_missing_source_table_is_a_clear_error_in_the_error_log(settings, table, url_attr, variable):
    prepare_drop(settings)
    engine = make_engine(getattr(settings, url_attr))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE "{table.name}"'))
    engine.dispose()
    report = run_drop(settings)
    assert not report.success
    verdict = report.verdict()
    assert f"{table.schema}.{table.name} was not found" in verdict and variable in verdict
    logged = errors(settings).filter(pl.col("Reason") == "source_table")
    assert logged.height == 1 and logged["FileName"].item() == f"{table.schema}.{table.name}"
    assert logged["DistrictId"].item() == 107873
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}


def test_only_the_drops_tenant_is_read_from_the_prod_db(tmp_path, pg_database):
    settings = make_settings(tmp_path / "home", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    prepare_drop(settings)
    others = generate_drop(tmp_path / "other", replace(SMALL, seed=5, classlink_tenant="Nutley PD",
                                                       classlink_tenant_id=7001, first_student_number=510001))
    engine = make_engine(pg_database)
    with engine.begin() as conn:  # a fourth tenant's users share the table
        conn.execute(class_link_users.insert(), others["classlink_users"].filter(
            pl.col("TenantName") == "Nutley PD").with_columns(pl.col("UserId") + "-n").to_dicts())
        total = conn.execute(sa.select(sa.func.count()).select_from(class_link_users)).scalar()
        tenant = conn.execute(sa.select(sa.func.count()).select_from(class_link_users).where(
            (class_link_users.c.TenantName == "Belleville PD") & (class_link_users.c.Role == "student"))).scalar()
    engine.dispose()
    assert total > 2 * tenant
    with _statements(pg_database) as seen:
        report = run_drop(settings)
    assert report.success
    assert report.source_rows["classlink_users"] == tenant
    users = [s for s in seen if '"ClassLinkUsers"' in s and '"UserId"' in s]  # reads of users, not tenant names
    assert users and all("WHERE" in s and '"TenantName" IN' in s for s in users)
    names = [s for s in seen if '"ClassLinkUsers"' in s and s not in users]
    assert all('SELECT DISTINCT dbo."ClassLinkUsers"."TenantName"' in s for s in names)  # an index-only scan


def test_a_tenants_users_are_read_as_text_whatever_types_the_prod_db_gives_them(tmp_path):
    """The users' frame is made as text at once (lib/read/theirs.py `_frame`): a column empty in its first rows
    keeps its later values, numbers come as their digits, and a value polars cannot write as text takes the other
    way instead of failing the read."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'prod.db'}")
    with engine.begin() as conn:  # a DBA's table: UserId and TenantId as numbers
        conn.execute(sa.text('CREATE TABLE "ClassLinkUsers" ("UserId" INTEGER PRIMARY KEY, "TenantId" INTEGER, '
                             '"TenantName" TEXT, "Role" TEXT, "Email" TEXT, "SourcedId" TEXT)'))
        conn.execute(sa.text('INSERT INTO "ClassLinkUsers" VALUES (:u, :t, \'Belleville PD\', \'Student\', :e, :s)'),
                     [{"u": 1000 + i, "t": 9 if i < 140 else 10, "e": f"s{i}@example.org",
                       "s": f"sid-{i}" if i >= 120 else None} for i in range(150)])
    users = read_classlink_students(engine, ["Belleville PD"], [9, 10])
    assert users.height == 150 and set(users.dtypes) == {pl.Utf8}
    assert users["UserId"][0] == "1000" and users["SourcedId"].null_count() == 120
    assert users["SourcedId"][-1] == "sid-149"  # not lost to a type guessed from the first rows
    with pytest.raises(SourceTableError, match="shared by tenants 9, 10 "):  # in the order of their numbers
        read_classlink_students(engine, ["Belleville PD"], [])
    with engine.begin() as conn:  # bytes, which polars does not write as text
        conn.execute(sa.text('UPDATE "ClassLinkUsers" SET "SourcedId" = X\'6162\' WHERE "UserId" = 1149'))
    assert read_classlink_students(engine, ["Belleville PD"], [9, 10])["SourcedId"][-1] == "ab"
    engine.dispose()
    floats = sa.create_engine(f"sqlite:///{tmp_path / 'floats.db'}")
    with floats.begin() as conn:  # a DBA's ids as floats: written as a cast of the column writes them
        conn.execute(sa.text('CREATE TABLE "ClassLinkUsers" ("UserId" REAL, "TenantId" INTEGER, "TenantName" TEXT, '
                             '"Role" TEXT, "Email" TEXT)'))
        conn.execute(sa.text('INSERT INTO "ClassLinkUsers" VALUES (1000.0, 9, \'Belleville PD\', \'student\', NULL)'))
    assert read_classlink_students(floats, ["Belleville PD"], [9])["UserId"].to_list() == ["1000.0"]
    floats.dispose()


# ---- the audit ---------------------------------------------------------------------------------------------

def test_tenants_are_counted_on_a_users_table_without_a_tenant_id_on_postgresql(pg_database):
    """TenantId is optional in the users table: without it the count grouped by a constant NULL, which PostgreSQL
    (and SQL Server) refuse, and onboarding said to check the SELECT grant. SQLite took it."""
    from belleville_mtss.lib.read.theirs import tenants_of_emails
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS dbo'))
        conn.execute(sa.text('CREATE TABLE dbo."ClassLinkUsers" ("UserId" TEXT PRIMARY KEY, "TenantName" TEXT, '
                             '"Role" TEXT, "Email" TEXT)'))
        conn.execute(sa.text('INSERT INTO dbo."ClassLinkUsers" VALUES (:u, :t, \'Student\', :e)'),
                     [{"u": f"u{i}", "t": "Belleville PD" if i < 3 else "Other", "e": f"s{i}@example.org"}
                      for i in range(5)])
    try:
        assert tenants_of_emails(engine, [f"s{i}@example.org" for i in range(4)]) == [
            ("Belleville PD", None, 3), ("Other", None, 1)]
    finally:
        engine.dispose()


def _audit(settings) -> pl.DataFrame:
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, ingestion_files).sort("FileId")
    finally:
        engine.dispose()


def test_the_audit_keeps_history_across_halted_corrected_duplicate_and_blocked_drops(settings, capsys, monkeypatch):
    import os
    import time
    drop = prepare_drop(settings)
    good_sm = (drop / "SM.csv").read_bytes()
    (drop / "SM.csv").write_bytes(good_sm[:-300])  # cut short: halted, the rest loads
    run_drop(settings)
    first = _audit(settings)
    assert dict(first.select("FileName", "Outcome").rows()) == {
        "students.csv": "loaded", "SR.csv": "loaded", "SM.csv": "halted", "SEL.csv": "loaded"}
    (drop / "SM.csv").write_bytes(good_sm)  # the corrected upload: a new version of the same drop
    os.utime(drop / "SM.csv", (time.time() + 5, time.time() + 5))
    run_drop(settings)
    second = _audit(settings)
    assert second.height == 8 and second.head(4).equals(first)  # the first run's rows and times are kept
    assert second["DropVersion"].n_unique() == 2 and second["RunId"].n_unique() == 2
    assert set(second.tail(4)["Outcome"]) == {"loaded"}
    resend = settings.drop_dir / "belleville" / "resend"
    shutil.copytree(drop, resend)  # the same bytes again, under another drop name
    run_drop(settings, "belleville/resend")
    third = _audit(settings).tail(4)
    assert set(third["Outcome"]) == {"duplicate"} and set(third["DuplicateOf"]) == {"belleville/2026-11-01"}
    foreign = settings.drop_dir / "belleville" / "foreign"
    shutil.copytree(drop, foreign)
    set_column(foreign / "SR.csv", "DistrictName", "Nutley Public Schools")
    run_drop(settings, "belleville/foreign")
    assert set(_audit(settings).tail(4)["Outcome"]) == {"blocked"}
    assert (_audit(settings)["OutcomeAt"] >= _audit(settings)["ReceivedAt"]).all()

    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    assert main(["status", "belleville/2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert out.count("version ") == 2 and "halted" in out and "loaded" in out
    assert "ingest/truncated 1" in out and "validation/row_rejected" in out
    assert main(["status", "belleville"]) == 0
    out = capsys.readouterr().out
    assert "belleville/resend" in out and "same bytes as belleville/2026-11-01" in out and "blocked" in out
    students = pl.read_csv(drop / "students.csv", infer_schema=False)["STUDENTS.STUDENT_NUMBER"]
    assert not numbers_in(out) & set(students)
    assert main(["status", "--summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("3 drop(s) of 1 district(s); files of each drop's latest receipt: 4 blocked, 4 duplicate, "
                        "4 loaded") and len(lines) == 4
    assert "2 receipt(s)  4 loaded" in next(line for line in lines if "belleville/2026-11-01" in line)
    assert main(["status", "--outcome", "blocked"]) == 0
    headers = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert headers == ["belleville/foreign"]


def test_the_head_a_run_checks_for_is_alembics_head():
    script = ScriptDirectory.from_config(migrations._config())
    assert script.get_current_head() == migrations.HEAD
    names = sorted(p.name for p in (migrations.SCRIPTS / "versions").glob("*.py"))
    assert [n[:4] for n in names] == [r.revision for r in reversed(list(script.walk_revisions()))]


def test_verify_tries_a_bulk_copy_and_the_district_lock_and_finds_column_grants_beyond_the_declared(pg_database):
    admin_url = sa.engine.make_url(pg_database)
    owner = _fresh(pg_database)
    migrations.upgrade(owner)
    with owner.begin() as conn:  # the other teams' tables, which the grants name
        conn.execute(sa.schema.CreateSchema("dbo", if_not_exists=True))
    theirs.create_all(owner)
    role = f"mtss_rt_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    _runtime_role(admin, admin_url.database, role)
    runtime = make_engine(admin_url.set(username=role).render_as_string(hide_password=False))
    try:
        def problems():
            return [f.text for f in verify(runtime) if not f.ok]

        found = [f.text for f in verify(runtime)]
        assert problems() == []
        assert "a one-row bulk copy into dm.StudentRosterStaging was written and removed, as a load does" in found
        assert "the district lock was taken and released, as each load does" in found
        assert [count_rows(owner, t) for t in STAGING.values()] == [0, 0, 0]  # the probe's row went again
        with admin.connect() as conn:  # the bulk copy's grant taken away, and a column grant nobody declared
            conn.execute(sa.text(f'REVOKE INSERT ON dm."StudentRosterStaging" FROM "{role}"'))
            conn.execute(sa.text(f'GRANT UPDATE ("Message") ON dm."IngestionErrors" TO "{role}"'))
        assert problems() == [
            f'{role} lacks INSERT on dm."StudentRosterStaging": GRANT INSERT ON dm."StudentRosterStaging" TO {role}',
            f'{role} holds UPDATE on dm."IngestionErrors"."Message", which the code does not need: '
            f'REVOKE UPDATE ("Message") ON dm."IngestionErrors" FROM {role}',
            "a one-row bulk copy into dm.StudentRosterStaging and its removal failed (InsufficientPrivilege) (see the "
            "grant lines above): a load would fail the same way"]
    finally:
        runtime.dispose()
        owner.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_a_districts_status_lists_its_own_drops_whatever_its_name_holds(tmp_path):
    """`belleville-mtss status north_east` matched drops by LIKE 'north_east/%', where "_" is any character:
    northXeast's drops and errors were listed as north_east's."""
    import datetime as dt
    from belleville_mtss.lib.load.audit import drop_status
    from belleville_mtss.lib.load.warehouse import ingestion_files, make_engine
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate_sample_warehouse(engine)
    at = dt.datetime(2026, 12, 6, 9)
    with engine.begin() as conn:
        conn.execute(ingestion_files.insert(), [
            {"DropId": f"{d}/2026-12-0{i}", "DropVersion": "v", "FileName": "SR.csv", "DistrictId": i,
             "Sha256": "0" * 64, "SizeBytes": 1, "RunId": "r", "ReceivedAt": at, "Outcome": "loaded", "OutcomeAt": at}
            for i, d in ((1, "north_east"), (2, "northXeast"))])
    shown = drop_status(engine, "north_east")
    engine.dispose()
    assert "north_east/2026-12-01" in shown and "northXeast" not in shown


def test_status_of_a_district_the_registry_lacks_is_an_error_and_of_a_known_one_with_no_drop_is_not(
        settings, monkeypatch, capsys):
    from belleville_mtss.lib.load.warehouse import make_engine
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    engine = make_engine(settings.warehouse_url)
    migrate_sample_warehouse(engine)
    engine.dispose()
    assert main(["status", "bellevile"]) == 2  # misspelt
    assert capsys.readouterr().err.strip() == ("belleville-mtss: error: no drop recorded for bellevile, and no "
                                               "registry entry 'bellevile' (known: belleville)")
    assert main(["status", "belleville/2026-11-01"]) == 0
    assert capsys.readouterr().out.strip() == "no drop recorded for belleville/2026-11-01"


def test_status_counts_each_receipts_own_errors_not_those_of_every_run_of_the_drop(tmp_path):
    """A replay (the usual remedy) logs its warnings again: `status` summed them over every run of the drop, so that
    each replay doubled, tripled... the drop's unknown students and rejected rows."""
    import datetime as dt
    from belleville_mtss.lib.load.audit import drop_status
    from belleville_mtss.lib.load.errors import ErrorRecord, record_errors
    from belleville_mtss.lib.load.warehouse import ingestion_files, make_engine
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate_sample_warehouse(engine)
    key = "belleville/2026-11-01"
    with engine.begin() as conn:
        conn.execute(ingestion_files.insert(), [
            {"DropId": key, "DropVersion": "v", "FileName": "SR.csv", "DistrictId": 107873, "Sha256": "0" * 64,
             "SizeBytes": 1, "RunId": run, "ReceivedAt": dt.datetime(2026, 12, 6, hour), "Outcome": "loaded",
             "OutcomeAt": dt.datetime(2026, 12, 6, hour)} for run, hour in (("first", 9), ("replay", 10))])
    for run in ("first", "replay"):
        record_errors(engine, [ErrorRecord("identity", "unknown_student", "SR.csv: 4 rows", "SR.csv", 4)],
                      district_id=107873, drop_id=key, run_id=run)
    for run in ("unanswered", "unanswered again"):
        record_errors(engine, [ErrorRecord("receive", "transfer_failed", "no answer")], district_id=107873,
                      drop_id=key, run_id=run)
    shown, summary = drop_status(engine, key), drop_status(engine, summary=True)
    engine.dispose()
    assert shown.count("    errors: identity/unknown_student 1 (4 rows)") == 2  # each receipt its own
    assert shown.endswith("  errors of runs that received nothing: receive/transfer_failed 2")  # summed
    assert summary.splitlines()[1].endswith("2 receipt(s)  1 loaded  errors 3")  # the replay's, and the refusals


def test_a_classlink_user_listed_twice_is_one_user_or_nobodys_and_a_schema_failure_halts_with_its_row():
    """One user listed twice in dbo.ClassLinkUsers (a view without a key) failed the whole drop, and its only error
    row said `read_drop (FileRejected)`, naming neither the table nor the check."""
    import polars as pl

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import validate_classlink
    district = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    tenant = district.source_names.classlink[0]

    def users(*rows):
        return pl.DataFrame([dict(zip(("UserId", "TenantName", "Email", "SourcedId"), r)) for r in rows])

    same, other = (1, tenant, "a@x.org", None), (2, tenant, "b@x.org", None)
    validated, errors = validate_classlink(users(same, same, other, (3, tenant, "c@x.org", None),
                                                 (3, tenant, "d@x.org", None)), district)
    assert validated.frame["classlink_user_id"].to_list() == ["1", "2"]
    assert [(e.stage, e.reason, e.row_count) for e in errors] == [("validation", "duplicate_user", 2)]
    halted, errors = validate_classlink(users(same, (2, None, "b@x.org", None)), district)
    assert halted.frame is None and halted.halted.reason == "schema" and "tenant_name" in halted.halted.message
    assert [(e.stage, e.reason, e.file_name) for e in errors] == [("validation", "schema", "dbo.ClassLinkUsers")]


def test_a_role_name_that_is_not_a_plain_name_is_quoted_in_the_grant_script(tmp_path, pg_database):
    """`warehouse grants --role svc-mtss` wrote the name as given: the script failed at the '-' (a mixed-case name
    would have named another role, PostgreSQL folding it)."""
    assert grants.role_name("postgresql", "mtss_runtime") == "mtss_runtime"
    assert grants.role_name("mssql", "DOMAIN\\svc]x") == "[DOMAIN\\svc]]x]"
    prepare_drop(make_settings(tmp_path / "admin", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database))
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    role = f"Svc-MTSS-{uuid.uuid4().hex[:6]}"
    try:
        _runtime_role(admin, sa.engine.make_url(pg_database).database, role)
        with admin.connect() as conn:
            assert conn.execute(sa.text("select has_table_privilege(:r, 'dm.\"IngestionErrors\"', 'INSERT')"),
                                {"r": role}).scalar_one()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
