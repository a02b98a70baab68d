"""Production is SQL Server: the DDL and the load statements compile for the mssql dialect as declared once."""
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from belleville_mtss.lib.load.warehouse import (
    account_info, assessment_results, class_link_users, ingestion_errors, ingestion_files, ours, student_roster, theirs,
)

DIALECT = mssql.dialect()


def _sql(stmt) -> str:
    return str(stmt.compile(dialect=DIALECT))


def test_ddl_compiles_with_schemas_and_bracket_quoting():
    for table in [*ours.sorted_tables, *theirs.sorted_tables]:
        ddl = _sql(CreateTable(table))
        assert f"CREATE TABLE {table.schema}.[{table.name}]" in ddl, ddl
        assert "VARCHAR(max)" not in ddl  # every text column has a length SQL Server can index
    roster = _sql(CreateTable(student_roster))
    assert 'PRIMARY KEY ([AccountInfoId], [StudentNumber])' in roster
    errors = _sql(CreateTable(ingestion_errors))
    assert "[ErrorId] INTEGER NOT NULL IDENTITY" in errors
    files = _sql(CreateTable(ingestion_files))
    assert "[SizeBytes] BIGINT NOT NULL" in files and "[FileId] INTEGER NOT NULL IDENTITY" in files


def test_load_statements_compile_with_bound_parameters():
    statements = [
        student_roster.delete().where(student_roster.c.AccountInfoId == 107873),
        assessment_results.delete().where((assessment_results.c.AccountInfoId == 1) &
                                          (assessment_results.c.Subject == "SR") &
                                          (assessment_results.c.SchoolYear == "2026-2027")),
        assessment_results.insert(), student_roster.insert(), ingestion_errors.insert(), ingestion_files.insert(),
        ingestion_files.update().where(ingestion_files.c.DropId == "d").values(Outcome="halted"),
        sa.select(account_info), sa.select(class_link_users),
    ]
    for stmt in statements:
        text = _sql(stmt)
        assert "107873" not in text and "'SR'" not in text  # values stay parameters
        assert "dm." in text or "dbo." in text


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_mssql_extra_reaches_a_connection_attempt():
    # No SQL Server runs here: a refused connection proves the driver and its bundled ODBC library load
    # (without Debian's libltdl7 the driver fails "Failed to load the driver" instead).
    import ctypes.util
    import pytest
    from belleville_mtss.lib.load.warehouse import make_engine
    from .conftest import IN_CI, need_debian_package
    if not IN_CI:
        pytest.importorskip("mssql_python", reason="the mssql extra is not installed: pip install -e '.[mssql]'")
    need_debian_package("libltdl7", ctypes.util.find_library("ltdl") is not None,
                        "the ODBC driver bundled with mssql-python loads it")
    url = f"mssql+mssqlpython://mtss_runtime:not-a-secret@127.0.0.1:{_closed_port()}/EDU_DW?Encrypt=no"
    assert make_engine(url).dialect.driver == "mssqlpython"
    engine = sa.create_engine(url, hide_parameters=True, connect_args={"timeout": 2})  # the driver's login timeout
    with pytest.raises(sa.exc.OperationalError) as raised:
        engine.connect()
    message = str(raised.value)
    assert "Failed to load the driver" not in message
    assert "TCP Provider" in message or "unable to establish connection" in message, message
    assert "not-a-secret" not in message


def test_the_sql_server_script_keeps_names_times_and_keys_and_stops_at_its_first_error(capsys):
    import re
    from belleville_mtss.cli import main
    assert main(["warehouse", "upgrade", "--sql", "--dialect", "mssql"]) == 0
    script = capsys.readouterr().out
    assert script.lstrip().startswith("SET XACT_ABORT ON;")
    for column in ("[FirstName] NVARCHAR(100)", "[LastName] NVARCHAR(100)", "[Message] NVARCHAR(1000)",
                   "[Reason] NVARCHAR(1000)", "[FileName] NVARCHAR(260)"):
        assert column in script, column
    assert not re.search(r"\bDATETIME\b", script)  # DATETIME2 only
    assert not re.search(r"\[\w+\] VARCHAR\(", script)  # our columns are all NVARCHAR (the version table aside)
    for key in ("StudentNumber", "Subject", "TestKey"):
        assert re.search(rf"\[{key}\] NVARCHAR\(\d+\) COLLATE Latin1_General_100_BIN2 NOT NULL", script), key
    # a warehouse an earlier release created is altered, its keys dropped and re-created around the change
    upgrade = script[script.index("0005 -> 0006"):]
    assert ("ALTER TABLE dm.[AssessmentResults] ALTER COLUMN [TestKey] NVARCHAR(120) COLLATE Latin1_General_100_BIN2 "
            "NOT NULL") in upgrade
    assert upgrade.index("DROP CONSTRAINT [PK_AssessmentResults]") < upgrade.index("ALTER COLUMN [TestKey]") < \
        upgrade.index("ADD CONSTRAINT [PK_AssessmentResults] PRIMARY KEY")


def test_lengths_are_counted_as_nvarchar_counts_them():
    import polars as pl
    from belleville_mtss.lib.load.warehouse import max_lengths, student_roster, value_too_long
    lengths = max_lengths(student_roster, {"FirstName": "first_name"})
    assert lengths == {"first_name": ("dm.StudentRoster.FirstName", 100)}
    names = ["😀" * 50, "😀" * 50 + "a", "王" * 100, "ễ" * 101]  # 100, 101, 100 and 101 UTF-16 units
    rejected = pl.DataFrame({"first_name": names}).select(value_too_long(lengths).otherwise(None).alias("why"))
    assert [why is not None for why in rejected["why"]] == [False, True, False, True]


def test_the_staging_tables_keep_the_keys_collation_and_never_escalate_to_a_table_lock(capsys):
    import re
    from belleville_mtss.cli import main
    assert main(["warehouse", "upgrade", "--sql", "--dialect", "mssql"]) == 0
    staging = capsys.readouterr().out.split("0006 -> 0007", 1)[1]
    table = staging[staging.index("CREATE TABLE dm.[AssessmentResultsStaging]"):].split(";", 1)[0]
    # the apply joins staging to the table on these keys: one collation on both sides, or SQL Server refuses
    for key in ("StudentNumber", "Subject", "TestKey"):
        assert re.search(rf"\[{key}\] NVARCHAR\(\d+\) COLLATE Latin1_General_100_BIN2 NULL", table), key
    assert "[LoadId] NVARCHAR(32) COLLATE Latin1_General_100_BIN2 NOT NULL" in table
    for name in ("StudentRoster", "AssessmentResults", "StudentRosterStaging", "AssessmentResultsStaging"):
        assert f"ALTER TABLE dm.{name} SET (LOCK_ESCALATION = DISABLE)" in staging, name
    assert main(["warehouse", "upgrade", "--sql", "--dialect", "postgresql"]) == 0
    pg = capsys.readouterr().out
    assert 'CREATE UNLOGGED TABLE dm."AssessmentResultsStaging"' in pg and "LOCK_ESCALATION" not in pg


def test_the_apply_statements_compile_for_sql_server_with_the_load_id_bound():
    from belleville_mtss.lib.load import warehouse as w
    seen = []

    class Recording:  # a connection that compiles what it is given for SQL Server instead of running it
        dialect = mssql.dialect()

        def execute(self, statement):
            seen.append(str(statement.compile(dialect=self.dialect)))
            return type("Result", (), {"rowcount": 0})()

    w.apply_roster(Recording(), 107873, "load-0123456789abcdef")
    w.apply_results(Recording(), 107873, "load-0123456789abcdef", [("SR", "2026-2027")])
    assert len(seen) == 5 and not any("load-0123" in s or "107873" in s for s in seen)
    delete, update, insert = seen[:3]  # the listed students replaced; what is left of the district not current
    assert delete.startswith("DELETE FROM dm.[StudentRoster] WHERE") and "EXISTS (SELECT" in delete
    assert update.startswith("UPDATE dm.[StudentRoster] SET [IsCurrent]=") and "EXISTS" not in update
    assert insert.startswith("INSERT INTO dm.[StudentRoster] ([AccountInfoId], [StudentNumber],")
    assert "FROM dm.[StudentRosterStaging]" in insert and "[StudentRosterStaging].[LoadId] = :LoadId_1" in insert
