"""Production is SQL Server: the DDL and the load statements compile for the mssql dialect as declared once."""
import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from belleville_mtss.lib.load.warehouse import (
    account_info, assessment_results, class_link_users, ingestion_errors, ingestion_files, ours, student_roster, theirs,
)
from .helpers import compiling_for_sql_server

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
    # a warehouse an earlier release created is altered, its keys found and dropped, re-created around the change
    upgrade = script[script.index("0005 -> 0006"):]
    assert ("ALTER TABLE dm.[AssessmentResults] ALTER COLUMN [TestKey] NVARCHAR(120) COLLATE Latin1_General_100_BIN2 "
            "NOT NULL") in upgrade
    assert upgrade.index("OBJECT_ID(N'dm.AssessmentResults')") < upgrade.index("ALTER COLUMN [TestKey]") < \
        upgrade.index("ADD CONSTRAINT [PK_AssessmentResults] PRIMARY KEY")


def test_lengths_are_counted_as_nvarchar_counts_them():
    import polars as pl
    from belleville_mtss.lib.load.warehouse import max_lengths, student_roster, value_too_long
    lengths = max_lengths(student_roster, {"FirstName": "first_name"})
    assert lengths == {"first_name": ("dm.StudentRoster.FirstName", 100)}
    names = ["😀" * 50, "😀" * 50 + "a", "王" * 100, "ễ" * 101]  # 100, 101, 100 and 101 UTF-16 units
    rejected = pl.DataFrame({"first_name": names}).select(value_too_long(lengths).otherwise(None).alias("why"))
    assert [why is not None for why in rejected["why"]] == [False, True, False, True]


def test_only_a_column_whose_bytes_exceed_its_bound_is_measured_and_the_reasons_stay_the_same():
    import polars as pl
    from hypothesis import given, settings, strategies as st
    from belleville_mtss.lib.load.warehouse import could_be_too_long, max_lengths, not_storable, student_roster
    lengths = max_lengths(student_roster, {"FirstName": "first_name", "LastName": "last_name"})  # 100 each
    short = pl.DataFrame({"first_name": ["é" * 50, None], "last_name": ["a" * 100, "王" * 33]})  # <= 100 bytes
    assert could_be_too_long(lengths, short) == {}
    # 300 bytes that fit (100 units), 201 bytes that do not (101 units): both measured, as NVARCHAR counts
    wide = pl.DataFrame({"first_name": ["王" * 100, "😀" * 50 + "a"], "last_name": ["a", "b"]})
    assert could_be_too_long(lengths, wide) == {"first_name": lengths["first_name"]}
    assert could_be_too_long(lengths, wide.drop("last_name")) == lengths  # a column not read is measured

    def reasons(frame, read):
        return frame.select(not_storable(lengths, read=read).otherwise(None).alias("why"))["why"].to_list()
    assert reasons(wide, wide) == [None, "value_too_long: first_name longer than 100 characters "
                                         "(dm.StudentRoster.FirstName)"]

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.text(max_size=110), st.text(alphabet="a😀é\x00 ", max_size=110)), min_size=1))
    def same_reasons(rows):
        frame = pl.DataFrame(rows, schema=["first_name", "last_name"], orient="row")
        assert reasons(frame, frame) == reasons(frame, None)
    same_reasons()


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
    Recording = compiling_for_sql_server(seen)

    w.apply_roster(Recording(), 107873, "load-0123456789abcdef")
    w.apply_results(Recording(), 107873, "load-0123456789abcdef", [("star", "SR", "2026-2027", None)])
    # the roster's 3, the year's 2 deletes, the look for its tests held in another year and their 2 deletes, the 2
    # inserts
    assert len(seen) == 10 and not any("load-0123" in s or "107873" in s for s in seen)
    delete, update, insert = seen[:3]  # the listed students replaced; what is left of the district not current
    assert delete.startswith("DELETE FROM dm.[StudentRoster] WHERE") and "[StudentNumber] IN (SELECT" in delete
    assert update.startswith("UPDATE dm.[StudentRoster] SET [IsCurrent]=") and "EXISTS" not in update
    assert insert.startswith("INSERT INTO dm.[StudentRoster] ([AccountInfoId], [StudentNumber],")
    assert "FROM dm.[StudentRosterStaging]" in insert and "[StudentRosterStaging].[LoadId] = :LoadId_1" in insert


# --- an earlier release's tables, and a script that stops at its first failed batch ---------------------------

def _earlier_release_tables() -> sa.MetaData:
    """The four tables as the releases before migrations made them with `create_all` (git show b17edbb^:
    belleville_mtss/lib/warehouse.py): primary keys declared on the columns, so SQL Server names them itself."""
    earlier = sa.MetaData()
    sa.Table("StudentRoster", earlier, sa.Column("AccountInfoId", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("StudentNumber", sa.String(20), primary_key=True), sa.Column("FirstName", sa.String(100)),
             sa.Column("DropId", sa.String(200), nullable=False), sa.Column("LoadedAt", sa.DateTime, nullable=False),
             schema="dm")
    sa.Table("AssessmentResults", earlier,
             sa.Column("AccountInfoId", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("Subject", sa.String(3), primary_key=True), sa.Column("TestKey", sa.String(120), primary_key=True),
             sa.Column("StudentNumber", sa.String(20), nullable=False), schema="dm")
    sa.Table("IngestionErrors", earlier, sa.Column("ErrorId", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("Message", sa.String(1000), nullable=False), schema="dm")
    sa.Table("IngestionFiles", earlier, sa.Column("DropId", sa.String(200), primary_key=True),
             sa.Column("FileName", sa.String(260), primary_key=True), schema="dm")
    return earlier


def _named(sql: str, pattern: str) -> list[str]:
    import re
    return re.findall(pattern, sql)


def test_the_upgrade_from_an_earlier_release_finds_each_key_and_index_it_drops():
    from belleville_mtss.lib.load.migrations import upgrade_sql
    earlier_ddl = "\n".join(_sql(CreateTable(t)) for t in _earlier_release_tables().sorted_tables)
    assert "CONSTRAINT" not in earlier_ddl and "PRIMARY KEY" in earlier_ddl  # SQL Server names these keys itself
    script = upgrade_sql("mssql", "0001")
    # Whatever the script drops by a literal name, it (or that DDL) created by that name before: never a guess.
    created, dropped = set(), []
    for statement in script.split("\nGO\n"):
        for name in _named(statement, r"DROP (?:INDEX|CONSTRAINT) \[(\w+)\]"):
            dropped.append(name)
            assert name in created, f"{name} dropped by name, never created by that name"
        created.update(_named(statement, r"(?:CREATE (?:UNIQUE )?(?:CLUSTERED )?INDEX|CONSTRAINT) \[(\w+)\]"))
    # the keys of the tables 0006 alters are found in the catalog, by table and kind, then dropped by what was found
    for table, pk_is_ours in (("StudentRoster", True), ("AssessmentResults", True), ("IngestionErrors", False),
                              ("IngestionFiles", False), ("GateAcceptances", False)):
        batch = next(b for b in script.split("\nGO\n") if f"DECLARE @t INT = OBJECT_ID(N'dm.{table}')" in b)
        assert ("i.is_primary_key = 1 OR" in batch) == pk_is_ours, table
        assert "FROM sys.indexes i" in batch and "EXEC sys.sp_executesql @drop" in batch
        assert "WITHIN GROUP (ORDER BY is_pk)" in batch  # nonclustered first: dropping the key rebuilds nothing
        assert "THROW 50006" in batch  # an index or statistics not ours on a changed column stops the script
        # its row counts kept out of the results, so that the THROW's message is the batch's first (read in the text)
        assert batch.index("SET NOCOUNT ON;") < batch.index("INSERT INTO @found") and "SET NOCOUNT OFF" in batch
    assert not [n for n in dropped if n.startswith("PK_")]  # no primary key is dropped by a name we gave it


def test_the_script_stops_after_a_failed_batch_whatever_the_client():
    from belleville_mtss.lib.load.migrations import BATCH_MARK, upgrade_sql
    batches = [b.strip() for b in upgrade_sql("mssql").split("\nGO\n") if b.strip()]
    assert batches[0].startswith("SET XACT_ABORT ON;")
    # Each batch ends recording its number; each later one first checks its predecessor's, and stops (rolls back
    # what is open, NOEXEC ON) when that batch did not end: a run-time error (XACT_ABORT) or a compile error.
    for number, batch in enumerate(batches[:-1], start=1):
        assert batch.endswith(f"EXEC sys.sp_set_session_context @key = N'{BATCH_MARK}', @value = {number};"), number
        if number > 1:
            guard = batch.split("\n")[:5]
            assert guard[0] == f"IF ISNULL(CAST(SESSION_CONTEXT(N'{BATCH_MARK}') AS INT), 0) <> {number - 1}"
            assert guard[2:5] == ["    IF @@TRANCOUNT > 0 ROLLBACK;",
                                  f"    RAISERROR(N'batch {number - 1} did not complete: stopping here, nothing "
                                  "after it runs', 16, 1);", "    SET NOEXEC ON;"]
    # Walk the script as SQL Server would with each batch failing in turn: no batch after it executes, and the
    # version row (written in its own batch per revision) is never moved past the failure.
    for failing in range(2, len(batches)):
        mark, noexec, ran = 0, False, []
        for number, batch in enumerate(batches[:-1], start=1):
            if noexec:
                continue  # compiled, not executed
            if number > 1 and mark != number - 1:
                noexec = True  # the guard
                continue
            if number == failing:
                continue  # the batch fails: its mark is never written
            ran.append(number)
            mark = number
        assert ran == list(range(1, failing)), failing
        assert mark != len(batches) - 1  # the last batch then raises its error: the script did not run whole
    assert batches[-1].startswith("SET NOEXEC OFF;") and "RAISERROR" in batches[-1]


# --- no statement binds more parameters than SQL Server takes -------------------------------------------------

def test_lists_that_grow_with_data_never_bind_more_than_2100_parameters_on_sql_server(tmp_path):
    from types import SimpleNamespace
    import polars as pl
    from belleville_mtss.lib.load import errors, order, warehouse as w
    from belleville_mtss.lib.load.migrations import upgrade
    engine = w.make_engine(f"sqlite:///{tmp_path}/w.db")
    upgrade(engine)
    most: dict[str, int] = {}

    def count(conn, clauseelement, multiparams, params, execution_options):
        if not isinstance(clauseelement, sa.sql.ClauseElement):
            return
        compiled = clauseelement.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
        name = str(compiled).split()[0]
        most[name] = max(most.get(name, 0), len(compiled.params))

    sa.event.listen(engine, "before_execute", count)
    n = 5_000
    keys = [f"belleville/2026-{i:05d}" for i in range(n)]
    files = [SimpleNamespace(name=f"f{i}.csv", sha256=f"{i:064x}", size=1) for i in range(n)]
    w.record_received(engine, keys[0], 107873, "v1", files, "run-1")
    w.record_received(engine, keys[1], 107873, "v1", files, "run-2")  # every file seen before: the dedup reads them
    assert w.mark_files(engine, keys[1], "run-2", "loaded", [f.name for f in files]) is None
    assert len(errors.refusals(engine, ("blocked",), keys)) == 0
    with engine.connect() as conn:
        assert len(order.first_receipts(conn, set(keys))) == 2
    scopes = [("star", "SR", f"{2000 + i}-{2001 + i}") for i in range(n)]
    assert w.load_figures(engine, w.assessment_results, 107873, keys[0], scopes)["rows"] == 0
    assert {"SELECT", "UPDATE"} <= set(most) and max(most.values()) <= 2_100, most
    done = w.read_table(engine, w.ingestion_files).filter(pl.col("RunId") == "run-2")
    assert done["Outcome"].unique().to_list() == ["duplicate"] and done.height == n  # every chunk was applied
    engine.dispose()


# --- a failed bulk copy is the load's one refusal ---------------------------------------------------------------

class _CoreError(Exception):
    """Shaped as mssql_py_core's own errors: not a subclass of the driver's Error, and the server's text in it."""


_CoreError.__module__ = "mssql_py_core"


@pytest.mark.parametrize("raised", [
    _CoreError("Received an invalid column length from the bcp client for colid 3: 'Kowalczyk.Anna@belleville.org'"),
    ValueError("cannot map Arrow type large_string for value 'Kowalczyk'"),
], ids=["mssql_py_core", "ValueError"])
def test_a_bulk_copy_that_fails_in_any_way_ends_the_load_load_failed_without_a_value(settings, raised, monkeypatch,
                                                                                      caplog, capsys):
    import logging
    from belleville_mtss.lib.load import warehouse as w
    from belleville_mtss.run import run_drop
    from .helpers import SMALL, errors, prepare_drop, warehouse_counts

    class Cursor:
        def bulkcopy_arrow(self, *args, **kwargs):
            raise raised

    class Engine:  # the real engine, but its raw connections hand out the failing driver cursor
        def __init__(self, engine):
            self.dialect = engine.dialect

        def raw_connection(self):
            return type("Raw", (), {"driver_connection": type("D", (), {"cursor": lambda self: Cursor()})(),
                                    "close": lambda self: None})()

    monkeypatch.setattr(w, "_copy_into", lambda engine, staging, frame: w._bulk_copy(Engine(engine), staging, frame))
    prepare_drop(settings, SMALL)
    caplog.set_level(logging.DEBUG)
    report = run_drop(settings, log_level="DEBUG")
    assert report.outcome == "failed"
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}
    logged = errors(settings).filter(pl.col("Reason") == "load_failed")
    assert logged.height == 1 and logged["Stage"].to_list() == ["load"]
    assert f"({type(raised).__name__})" in logged["Message"][0]
    engine = w.make_engine(settings.warehouse_url)
    files = w.read_table(engine, w.ingestion_files)
    assert set(files["Outcome"]) <= {"failed", "halted"} and "failed" in set(files["Outcome"])
    engine.dispose()
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err, "\n".join(errors(settings)["Message"])):
        assert "Kowalczyk" not in text and "colid" not in text and "large_string" not in text


def test_staging_is_clustered_on_its_ever_increasing_load_key_and_the_targets_escalate_again(capsys):
    from belleville_mtss.cli import main
    from belleville_mtss.lib.load.warehouse import new_load_id
    assert main(["warehouse", "upgrade", "--sql", "--dialect", "mssql"]) == 0
    script = capsys.readouterr().out.split("0008 -> 0009", 1)[1]
    for table in ("StudentRosterStaging", "AssessmentResultsStaging"):
        assert f"CREATE CLUSTERED INDEX [CX_{table}_LoadId] ON dm.[{table}] ([LoadId])" in script, table
    for table in ("StudentRoster", "AssessmentResults"):
        assert f"ALTER TABLE dm.{table} SET (LOCK_ESCALATION = TABLE)" in script, table
    ids = [new_load_id() for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50 and {len(i) for i in ids} == {32}  # appended at the key's end


def test_the_verify_probes_and_the_staged_deletes_compile_for_sql_server():
    from belleville_mtss.lib.load import verify as v
    from belleville_mtss.lib.load import warehouse as w

    escalation = sa.text(v.LOCK_ESCALATION_SQL).bindparams(sa.bindparam("names", sorted(v.LOCK_ESCALATION),
                                                                        expanding=True))
    compiled = escalation.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
    assert "lock_escalation_desc FROM sys.tables" in str(compiled) and "IN (" in str(compiled)
    assert "snapshot_isolation_state_desc" in str(sa.text(v.SNAPSHOT_SQL).compile(dialect=DIALECT))
    for (dialect, column), sql in v._HAS.items():
        if dialect == "mssql":
            assert "HAS_PERMS_BY_NAME(:o, 'OBJECT', :p" in str(sa.text(sql).compile(dialect=DIALECT))
    seen = []

    class Engine:  # compiles the staged-row deletes a SQL Server load sends instead of running them
        dialect = DIALECT

        def begin(self):
            import contextlib
            conn = type("C", (), {"execute": lambda self, s, p=None: seen.append((str(s.compile(dialect=DIALECT)), p))
                                  or type("R", (), {"rowcount": 0})()})()
            return contextlib.nullcontext(conn)

    w.unstage(Engine(), "0123456789abcdef0123456789abcdef")
    w.sweep_staging(Engine(), 6)
    assert [s for s, _ in seen] == [
        "DELETE TOP (50000) FROM dm.[StudentRosterStaging] WHERE [LoadId] = :value",
        "DELETE TOP (50000) FROM dm.[AssessmentResultsStaging] WHERE [LoadId] = :value",
        "DELETE TOP (50000) FROM dm.[AssessmentScoresStaging] WHERE [LoadId] = :value",
        "DELETE TOP (50000) FROM dm.[StudentRosterStaging] WHERE [LoadId] < :value",
        "DELETE TOP (50000) FROM dm.[AssessmentResultsStaging] WHERE [LoadId] < :value",
        "DELETE TOP (50000) FROM dm.[AssessmentScoresStaging] WHERE [LoadId] < :value"]
    assert all(set(p) == {"value"} for _, p in seen)


def test_the_district_lock_sets_nocount_back_before_its_one_result():
    """Read in the batch's text, not run against a server: the procedure's row counts are kept out of the results,
    and NOCOUNT is set off again before the SELECT, so that the session the apply then runs on counts rows."""
    from belleville_mtss.lib.load.lock import MSSQL_TRY
    statements = [s.strip() for s in MSSQL_TRY.split(";")]
    assert statements[0] == "SET NOCOUNT ON" and statements[-2:] == ["SET NOCOUNT OFF", "SELECT @r"]
    assert [s for s in statements if s.startswith("SELECT")] == ["SELECT @r"]
