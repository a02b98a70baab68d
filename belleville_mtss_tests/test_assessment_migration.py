"""Migration 0011: `Assessment` in dm.AssessmentResults and its key, a wider `Subject`, and dm.AssessmentScores.

A PowerSchool + Star drop loaded at the schema of 4b21c8a (0008, before 0009-0011) is, after the upgrade, every row and value it was
(Star's rows `star`), and a load of the same drop with this release finds them again. A results frame's `Scores` are
written beside its results and replaced with them, scope by scope; another assessment's rows with the same subject
and test key stay. On SQLite and PostgreSQL; SQL Server's script is compiled and read (no SQL Server runs here)."""
import datetime as dt
import shutil

import polars as pl
import pytest
import sqlalchemy as sa

from belleville_mtss.lib.load import migrations
from belleville_mtss.lib.load.warehouse import (
    STAGING, account_info, assessment_results, assessment_scores, class_link_users, count_rows, make_engine,
    read_table, replace_results, results_scopes, scores_of, student_roster,
)
from belleville_mtss.lib.sample import (
    SampleSpec, account_info_rows, create_their_table, generate_drop, load_databases,
)
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import compiling_for_sql_server

SPEC = SampleSpec(students=150, missing_from_classlink=3, without_tests=4, unknown_star_rows=2)
DROP = f"belleville/{SPEC.drop_name}"


# ---- a PowerSchool + Star drop across the upgrade ---------------------------------------------------------------

def _sorted(engine: sa.Engine, table: sa.Table, without: tuple[str, ...] = ()) -> list[tuple]:
    """The table's rows in key order, as tuples of its declared columns (less `without`)."""
    key = [c.name for c in table.primary_key.columns]
    return read_table(engine, table).sort(key).drop(*without).rows()


def _their_tables(settings, classlink_users: pl.DataFrame) -> sa.Engine:
    """The other teams' tables as their owners would have them (as lib/sample.load_databases makes them), and
    the warehouse engine; ours are left to the test."""
    prod = make_engine(settings.prod_db_url)
    create_their_table(prod, class_link_users)
    with prod.begin() as conn:
        conn.execute(class_link_users.insert(), classlink_users.to_dicts())
    prod.dispose()
    warehouse = make_engine(settings.warehouse_url)
    create_their_table(warehouse, account_info)
    with warehouse.begin() as conn:
        conn.execute(account_info.insert(), account_info_rows())
    return warehouse


def test_a_star_drop_loaded_at_0008_is_every_row_and_value_it_was_after_the_upgrade_and_after_a_reload(
        backend, tmp_path):
    # what this release writes for the drop, loaded into a warehouse of its own: the previous release wrote the
    # same rows, without Assessment (the columns and values 0008, the schema at 4b21c8a, had)
    ref = make_settings(tmp_path / "reference")
    tables = generate_drop(ref.drop_dir / "belleville" / SPEC.drop_name, SPEC)
    load_databases(ref.prod_db_url, ref.warehouse_url, tables["classlink_users"])
    assert run_drop(ref, DROP).outcome == "loaded"
    ref_engine = make_engine(ref.warehouse_url)
    results, roster = read_table(ref_engine, assessment_results), read_table(ref_engine, student_roster)
    expected_results, expected_roster = _sorted(ref_engine, assessment_results), _sorted(ref_engine, student_roster)
    ref_engine.dispose()
    assert set(results["Assessment"]) == {"star"} and set(results["Subject"]) == {"SR", "SM", "SEL"}
    assert results.height > SPEC.students  # every subject's tests

    # the drop's files, and a warehouse at 0008 (the schema at 4b21c8a) holding what the previous release loaded from them
    shutil.copytree(ref.drop_dir / "belleville" / SPEC.drop_name, backend.drop_dir / "belleville" / SPEC.drop_name)
    engine = _their_tables(backend, tables["classlink_users"])
    migrations.upgrade(engine, "0008")
    schema = None if engine.dialect.name == "sqlite" else "dm"
    at_0008 = sa.Table("AssessmentResults", sa.MetaData(), autoload_with=engine, schema=schema)
    assert "Assessment" not in at_0008.c and at_0008.c.Subject.type.length == 3
    roster_0008 = sa.Table("StudentRoster", sa.MetaData(), autoload_with=engine, schema=schema)
    with engine.begin() as conn:
        conn.execute(roster_0008.insert(), roster.to_dicts())
        conn.execute(at_0008.insert(), results.drop("Assessment").to_dicts())

    migrations.upgrade(engine)
    assert migrations.current(engine) == migrations.head()
    # every row and value as it was, Star's rows stamped `star` (what the reference holds, exactly)
    assert _sorted(engine, assessment_results) == expected_results
    assert _sorted(engine, student_roster) == expected_roster
    assert count_rows(engine, assessment_scores) == 0
    pk = sa.inspect(engine).get_pk_constraint("AssessmentResults", schema=schema)
    assert (pk["name"], pk["constrained_columns"]) == ("PK_AssessmentResults",
                                                       ["AccountInfoId", "Assessment", "Subject", "TestKey"])

    # the same drop loaded again by this release: the same rows and values (loaded anew: LoadedAt aside)
    report = run_drop(backend, DROP)
    assert report.outcome == "loaded" and report.checks_passed, report.render()
    loaded = ("LoadedAt",)
    assert _sorted(engine, assessment_results, loaded) == [
        tuple(v for v, c in zip(row, assessment_results.c.keys()) if c not in loaded) for row in expected_results]
    assert _sorted(engine, student_roster, loaded) == [
        tuple(v for v, c in zip(row, student_roster.c.keys()) if c not in loaded) for row in expected_roster]
    assert count_rows(engine, assessment_scores) == 0  # Star sends no score beyond the common columns
    assert [count_rows(engine, t) for t in STAGING.values()] == [0, 0, 0]
    engine.dispose()


# ---- scores beyond the common columns, replaced with their results ---------------------------------------------

SCORES = pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8}))


def _results(assessment: str, keys: list[str], scores: list[list[tuple[str, str | None]]] | None = None,
             year: str = "2026-2027", drop: str = "belleville/x", subject: str = "Mathematics") -> pl.DataFrame:
    """Results of one assessment, with each row's other scores where `scores` is given (else no `Scores`)."""
    n = len(keys)
    frame = pl.DataFrame({
        "AccountInfoId": [107873] * n, "Assessment": [assessment] * n, "Subject": [subject] * n, "TestKey": keys,
        "StudentNumber": [f"00{i}" for i in range(n)], "SchoolYear": [year] * n,
        "CompletedAt": [dt.datetime(2026, 10, 1, 9, i) for i in range(n)], "ScaledScore": [200 + i for i in range(n)],
        "DropId": [drop] * n, "LoadedAt": [dt.datetime(2026, 11, 28)] * n,
    }, schema_overrides={"ScaledScore": pl.Int32})
    if scores is None:
        return frame
    return frame.with_columns(pl.Series("Scores", [[{"name": k, "value": v} for k, v in row] for row in scores],
                                        dtype=SCORES))


def _scores(engine: sa.Engine) -> list[tuple]:
    """(Assessment, TestKey, ScoreName, ScoreValue, DropId) of every score held, in key order."""
    return _sorted(engine, assessment_scores, ("AccountInfoId", "Subject", "LoadedAt"))


def test_a_results_frame_writes_its_scores_each_row_keyed_by_its_test_event():
    frame = _results("map_growth", ["k1", "k2", "k3"],
                     [[("RIT", "213"), ("Quantile", "EM400Q")], [], [("Achievement", "Above Typical")]])
    assert scores_of(frame).select("TestKey", "ScoreName", "ScoreValue", "DropId").rows() == [
        ("k1", "RIT", "213", "belleville/x"), ("k1", "Quantile", "EM400Q", "belleville/x"),
        ("k3", "Achievement", "Above Typical", "belleville/x")]
    assert scores_of(frame.drop("Scores")).is_empty()  # a frame without Scores writes none


def test_scores_are_replaced_with_their_scope_and_another_assessments_rows_stay(engine):
    # two assessments whose subject and test keys coincide: the key tells them apart
    iready = _results("iready_diagnostic", ["k1", "k2"], [[("Placement", "Grade 3")], [("Placement", "Grade 4")]])
    assert replace_results(engine, 107873, iready) == 2
    prior = _results("map_growth", ["p1"], [[("RIT", "198")]], year="2025-2026", drop="belleville/w")
    replace_results(engine, 107873, prior)
    first = _results("map_growth", ["k1", "k2"], [[("RIT", "213"), ("Quantile", "EM400Q")], []])
    assert replace_results(engine, 107873, first) == 2
    untouched = {"iready_diagnostic": [("iready_diagnostic", "k1", "Placement", "Grade 3", "belleville/x"),
                                       ("iready_diagnostic", "k2", "Placement", "Grade 4", "belleville/x")],
                 "prior": [("map_growth", "p1", "RIT", "198", "belleville/w")]}
    assert _scores(engine) == [*untouched["iready_diagnostic"], ("map_growth", "k1", "Quantile", "EM400Q",
                                                                 "belleville/x"),
                               ("map_growth", "k1", "RIT", "213", "belleville/x"), *untouched["prior"]]
    iready_rows = _sorted(engine, assessment_results)[:2]

    # the same scope again, its scores changed: exactly the new ones, no leftover, no duplicate
    again = _results("map_growth", ["k1", "k2"], [[("RIT", "215")], [("RIT", "199"), ("Lexile", None)]],
                     drop="belleville/y")
    assert replace_results(engine, 107873, again) == 2
    assert _scores(engine) == [*untouched["iready_diagnostic"], ("map_growth", "k1", "RIT", "215", "belleville/y"),
                               ("map_growth", "k2", "Lexile", None, "belleville/y"),
                               ("map_growth", "k2", "RIT", "199", "belleville/y"), *untouched["prior"]]
    assert _sorted(engine, assessment_results)[:2] == iready_rows  # the other assessment's results stay as they were

    # and once more without Scores: the scope's scores go with its results, the rest stays
    assert replace_results(engine, 107873, _results("map_growth", ["k1"], drop="belleville/z")) == 1
    assert _scores(engine) == [*untouched["iready_diagnostic"], *untouched["prior"]]
    held = read_table(engine, assessment_results).sort("Assessment", "SchoolYear", "TestKey")
    assert held.select("Assessment", "SchoolYear", "TestKey", "DropId").rows() == [
        ("iready_diagnostic", "2026-2027", "k1", "belleville/x"),
        ("iready_diagnostic", "2026-2027", "k2", "belleville/x"),
        ("map_growth", "2025-2026", "p1", "belleville/w"), ("map_growth", "2026-2027", "k1", "belleville/z")]
    assert [count_rows(engine, t) for t in STAGING.values()] == [0, 0, 0]


def test_a_subject_longer_than_stars_and_a_score_keep_their_text_as_sent(engine):
    subject, value = "Early Literacy: Phonemic Awareness", "≥ 95th percentile · Ünïcödé"
    frame = _results("dibels8", ["d1"], [[("Composite Benchmark Status", value)]], subject=subject)
    replace_results(engine, 107873, frame)
    assert read_table(engine, assessment_results)["Subject"].to_list() == [subject]
    assert read_table(engine, assessment_scores).select("Subject", "ScoreName", "ScoreValue").rows() == [
        (subject, "Composite Benchmark Status", value)]
    assert results_scopes(frame) == [("dibels8", subject, "2026-2027", None)]


# ---- SQL Server: the script a DBA applies, compiled and read ----------------------------------------------------

def _batches_of_0011() -> list[str]:
    script = migrations.upgrade_sql("mssql", "0010")
    return [b.strip() for b in script.split("\nGO\n") if b.strip()]


def test_the_sql_server_script_of_0011_rekeys_in_place_and_stops_at_its_first_failed_batch():
    from belleville_mtss.lib.load.migrations import BATCH_MARK
    batches = _batches_of_0011()
    # guarded like every script (lib/load/migrations.py `guarded`): each batch checks its predecessor ended
    for number, batch in enumerate(batches[:-1], start=1):
        assert batch.endswith(f"EXEC sys.sp_set_session_context @key = N'{BATCH_MARK}', @value = {number};")
        if number > 1:
            assert batch.startswith(f"IF ISNULL(CAST(SESSION_CONTEXT(N'{BATCH_MARK}') AS INT), 0) <> {number - 1}")
    script = "\nGO\n".join(batches)
    body = script[script.index("Running upgrade 0010 -> 0011"):]
    steps = [
        "DELETE FROM dm.[AssessmentResultsStaging]",
        "DROP INDEX [IX_AssessmentResults_Student] ON dm.[AssessmentResults]",
        "DROP INDEX [IX_AssessmentResults_Drop] ON dm.[AssessmentResults]",
        # the primary key found by what it is, whatever its name
        "FROM sys.key_constraints\n    WHERE parent_object_id = OBJECT_ID(N'dm.AssessmentResults') AND type = 'PK'",
        "ALTER TABLE dm.[AssessmentResults] ALTER COLUMN [Subject] NVARCHAR(40) COLLATE Latin1_General_100_BIN2 "
        "NOT NULL",
        "ALTER TABLE dm.[AssessmentResults] ADD [Assessment] NVARCHAR(40) COLLATE Latin1_General_100_BIN2 NOT NULL "
        "CONSTRAINT [DF_AssessmentResults_Assessment] DEFAULT N'star'",
        "ALTER TABLE dm.[AssessmentResults] DROP CONSTRAINT [DF_AssessmentResults_Assessment]",
        "ALTER TABLE dm.[AssessmentResults] ADD CONSTRAINT [PK_AssessmentResults] PRIMARY KEY ([AccountInfoId], "
        "[Assessment], [Subject], [TestKey])",
        "CREATE INDEX [IX_AssessmentResults_Student] ON dm.[AssessmentResults] ([AccountInfoId], [StudentNumber])",
        "CREATE INDEX [IX_AssessmentResults_Drop] ON dm.[AssessmentResults] ([DropId])",
        "ALTER TABLE dm.[AssessmentResultsStaging] ALTER COLUMN [Subject] NVARCHAR(40) COLLATE "
        "Latin1_General_100_BIN2 NULL",
        "ALTER TABLE dm.[AssessmentResultsStaging] ADD [Assessment] NVARCHAR(40) COLLATE Latin1_General_100_BIN2 NULL",
        "CREATE TABLE dm.[AssessmentScores] (",
        "CONSTRAINT [PK_AssessmentScores] PRIMARY KEY ([AccountInfoId], [Assessment], [Subject], [TestKey], "
        "[ScoreName])",
        "CREATE INDEX [IX_AssessmentScores_Drop] ON dm.[AssessmentScores] ([DropId])",
        "CREATE TABLE dm.[AssessmentScoresStaging] (",
        "CREATE CLUSTERED INDEX [CX_AssessmentScoresStaging_LoadId] ON dm.[AssessmentScoresStaging] ([LoadId])",
        "ALTER TABLE dm.AssessmentScoresStaging SET (LOCK_ESCALATION = DISABLE)",
        "UPDATE dm.[MtssSchemaVersion] SET version_num='0011'",
    ]
    at = [body.index(step) for step in steps]
    assert at == sorted(at)
    assert "[ScoreValue] NVARCHAR(200) NULL" in body and "[LoadedAt] DATETIME2 NOT NULL" in body
    assert "DROP CONSTRAINT [PK_" not in body  # never by the name we would have given it
    assert "dm.AssessmentScores SET (LOCK_ESCALATION" not in body  # the target keeps the server's default, TABLE


def test_the_apply_of_results_and_scores_compiles_for_sql_server_with_every_value_bound():
    from belleville_mtss.lib.load import warehouse as w
    seen = []
    Recording = compiling_for_sql_server(seen)

    w.apply_results(Recording(), 107873, "load-0123456789abcdef", [("map_growth", "Mathematics", "2026-2027",
                                                                     "Winter")])
    scores, results, held_elsewhere, moved_scores, moved_results, insert_results, insert_scores = seen
    assert held_elsewhere.startswith("SELECT TOP __[POSTCOMPILE_param_1] dm.[AssessmentResults].[TestKey]"), \
        held_elsewhere
    assert not any(v in s for s in seen for v in ("107873", "load-0123", "map_growth", "Mathematics", "2026-2027",
                                                   "Winter"))
    assert "[ScreeningWindow] = :" in results  # a term's scope (MAP Growth's export)
    for moved, table in ((moved_scores, "AssessmentScores"), (moved_results, "AssessmentResults")):
        # the tests held under another subject, term or year of the assessment: a plain IN (subquery), no row
        # value, which SQL Server lacks
        assert moved.startswith(f"DELETE FROM dm.[{table}] WHERE") and "[Assessment] = :" in moved, moved
        assert "[Subject] = :" not in moved, moved
        assert "[TestKey] IN (SELECT dm.[AssessmentResultsStaging].[TestKey]" in moved, moved
    assert scores.startswith("DELETE FROM dm.[AssessmentScores] WHERE") and "[Assessment] = :" in scores
    assert "[TestKey] IN (SELECT dm.[AssessmentResults].[TestKey]" in scores
    assert results.startswith("DELETE FROM dm.[AssessmentResults] WHERE") and "[SchoolYear] = :" in results
    assert insert_results.startswith("INSERT INTO dm.[AssessmentResults] (") and \
        "FROM dm.[AssessmentResultsStaging]" in insert_results
    assert insert_scores.startswith("INSERT INTO dm.[AssessmentScores] ([AccountInfoId], [Assessment], [Subject], "
                                    "[TestKey], [ScoreName], [ScoreValue], [DropId], [LoadedAt])")
    assert "FROM dm.[AssessmentScoresStaging]" in insert_scores


def test_an_upgrade_of_sqlite_that_fails_halfway_leaves_the_revision_before_it_whole_and_can_run_again(tmp_path):
    """Python's sqlite3 begins a transaction only before a row is written: 0010's first statement (a column added)
    was committed as it ran, so a migration that died after it left the column under revision 0009, and every
    upgrade after it failed on a column added twice (the embedded default upgrades on every run: all frozen)."""
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine, "0009")

    def dies(conn, cursor, statement, *_):
        if statement.lstrip().startswith('ALTER TABLE "LinkSuggestions" ADD COLUMN'):
            raise KeyboardInterrupt  # as a kill would stop it: after the statement ran
    sa.event.listen(sa.Engine, "after_cursor_execute", dies)
    try:
        with pytest.raises(KeyboardInterrupt):
            migrations.upgrade(engine)
    finally:
        sa.event.remove(sa.Engine, "after_cursor_execute", dies)
    assert migrations.current(engine) == "0009"
    assert "Status" not in {c["name"] for c in sa.inspect(engine).get_columns("LinkSuggestions")}
    migrations.upgrade(engine)
    assert migrations.current(engine) == migrations.head()
    engine.dispose()
