"""Tables of the prod db (dbo) and the EDU Data Warehouse (dm), declared once, and how we write to them.

`ours` are the tables we own; their schema changes only through migrations (lib/load/migrations.py), and the declarations
below always equal the migrations' head (a test compares them). `theirs` are the other teams' tables as the mapping
spec names them: we only read them (lib/read/theirs.py finds them in their own case), and only the embedded demo creates
its own SQLite copies of them. Production is SQL Server with real schemas; the embedded default is SQLite, which
has none, so schemas are translated away per dialect. Engines hide bound parameters, so a database error never
echoes student data.
"""
from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..faults import fault_point
from .types import key, text, timestamp

ours = sa.MetaData()
theirs = sa.MetaData()

class_link_users = sa.Table(
    "ClassLinkUsers", theirs,
    sa.Column("UserId", text(64), primary_key=True),
    sa.Column("TenantId", sa.Integer, nullable=False),
    sa.Column("TenantName", text(200), nullable=False),
    sa.Column("Role", text(32), nullable=False),
    sa.Column("Email", text(320)),
    sa.Column("GivenName", text(100)),
    sa.Column("FamilyName", text(100)),
    # Where ClassLink keeps a OneRoster-rostered user's sourcedId. The name is ours until the product team's is
    # known: MTSS_CLASSLINK_COLUMNS=SourcedId=<theirs> maps it, and a table without it reads it as empty.
    sa.Column("SourcedId", text(255)),
    schema="dbo",
)

account_info = sa.Table(
    "AccountInfo", theirs,
    sa.Column("AccountInfoId", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("NcesId", text(7)),
    sa.Column("DistrictName", text(200), nullable=False),
    sa.Column("State", text(2), nullable=False),
    sa.Column("County", text(100)),
    schema="dm",
)

student_roster = sa.Table(
    "StudentRoster", ours,
    sa.Column("AccountInfoId", sa.Integer, autoincrement=False),
    sa.Column("StudentNumber", key(20)),
    sa.Column("FirstName", text(100)),
    sa.Column("LastName", text(100)),
    sa.Column("Email", text(320)),
    sa.Column("GradeLevel", text(8)),
    sa.Column("SchoolId", text(20)),
    sa.Column("ClassLinkUserId", text(64)),
    sa.Column("StarTestCount", sa.Integer, nullable=False),
    sa.Column("DropId", text(200), nullable=False),  # the drop that last listed the student
    sa.Column("LoadedAt", timestamp(), nullable=False),
    # false: the district's newest drop no longer lists the student; the row stays (history, never deleted)
    sa.Column("IsCurrent", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.PrimaryKeyConstraint("AccountInfoId", "StudentNumber", name="PK_StudentRoster"),
    sa.Index("IX_StudentRoster_Drop", "DropId"),
    sa.Index("IX_StudentRoster_Current", "AccountInfoId", "IsCurrent"),
    schema="dm",
)

assessment_results = sa.Table(
    "AssessmentResults", ours,
    sa.Column("AccountInfoId", sa.Integer, autoincrement=False),
    sa.Column("Subject", key(40)),  # Star's SR, SM, SEL; another vendor's subjects are longer (0011 widened it)
    sa.Column("TestKey", key(120)),
    sa.Column("StudentNumber", key(20), nullable=False),
    sa.Column("SchoolYear", text(9), nullable=False),
    sa.Column("CompletedAt", timestamp(), nullable=False),
    sa.Column("Grade", text(12)),
    sa.Column("ScaledScore", sa.Integer),
    sa.Column("PercentileRank", sa.Integer),
    sa.Column("UnifiedScore", sa.Integer),
    sa.Column("BenchmarkCategory", text(100)),
    sa.Column("ScreeningWindow", text(200)),
    sa.Column("DropId", text(200), nullable=False),
    sa.Column("LoadedAt", timestamp(), nullable=False),
    # Active, or Deactivated (a teacher invalidated the test: its scores are empty); NULL: loaded before 0005
    sa.Column("AssessmentStatus", text(12)),
    sa.Column("DeactivationReason", text(200)),
    # which assessment (a source's name: star, map_growth, ...): two vendors' test ids may coincide. Last, as
    # migration 0011 added it (every row before it is Star's)
    sa.Column("Assessment", key(40), nullable=False),
    sa.PrimaryKeyConstraint("AccountInfoId", "Assessment", "Subject", "TestKey", name="PK_AssessmentResults"),
    sa.Index("IX_AssessmentResults_Student", "AccountInfoId", "StudentNumber"),
    sa.Index("IX_AssessmentResults_Drop", "DropId"),
    schema="dm",
)

# The scores of a test event beyond dm.AssessmentResults' common columns, one row per score as the vendor names it:
# nothing a vendor sends is lost. Text, as a score may be a number or a level. Replaced with its results (scope).
assessment_scores = sa.Table(
    "AssessmentScores", ours,
    sa.Column("AccountInfoId", sa.Integer, autoincrement=False),
    sa.Column("Assessment", key(40)),
    sa.Column("Subject", key(40)),
    sa.Column("TestKey", key(120)),
    sa.Column("ScoreName", key(100)),
    sa.Column("ScoreValue", text(200)),
    sa.Column("DropId", text(200), nullable=False),
    sa.Column("LoadedAt", timestamp(), nullable=False),
    sa.PrimaryKeyConstraint("AccountInfoId", "Assessment", "Subject", "TestKey", "ScoreName",
                            name="PK_AssessmentScores"),
    sa.Index("IX_AssessmentScores_Drop", "DropId"),
    schema="dm",
)

ingestion_errors = sa.Table(
    "IngestionErrors", ours,
    sa.Column("ErrorId", sa.Integer, autoincrement=True),
    sa.Column("OccurredAt", timestamp(), nullable=False),
    sa.Column("DistrictId", sa.Integer),  # the registry's AccountInfoId for the drop
    sa.Column("DropId", text(200)),
    sa.Column("FileName", text(260)),
    sa.Column("Stage", text(32), nullable=False),
    sa.Column("Reason", text(64), nullable=False),
    sa.Column("RowCount", sa.Integer),
    sa.Column("Message", text(1000), nullable=False),
    sa.Column("RunId", text(64)),
    sa.PrimaryKeyConstraint("ErrorId", name="PK_IngestionErrors"),
    sa.Index("IX_IngestionErrors_Drop", "DropId"),
    sa.Index("IX_IngestionErrors_District", "DistrictId", "OccurredAt"),
    schema="dm",
)

# Append-only: one row per file per run that received (or replayed) it; Outcome moves from "received" to
# loaded, halted, blocked, failed (its run ended without deciding it), duplicate (loaded, with content an
# earlier drop already brought) or not_expected (no source the district's registry entry lists claims it), at
# OutcomeAt.
ingestion_files = sa.Table(
    "IngestionFiles", ours,
    sa.Column("FileId", sa.Integer, sa.Identity()),
    sa.Column("DropId", text(200), nullable=False),
    sa.Column("DropVersion", text(32)),
    sa.Column("FileName", text(260), nullable=False),
    sa.Column("DistrictId", sa.Integer),
    sa.Column("Sha256", text(64), nullable=False),
    sa.Column("SizeBytes", sa.BigInteger, nullable=False),
    sa.Column("RunId", text(64)),
    sa.Column("ReceivedAt", timestamp(), nullable=False),
    sa.Column("Outcome", text(32), nullable=False),
    sa.Column("OutcomeAt", timestamp(), nullable=False),
    sa.Column("DuplicateOf", text(200)),  # the earlier drop that brought the same bytes
    sa.PrimaryKeyConstraint("FileId", name="PK_IngestionFiles_FileId"),
    sa.Index("IX_IngestionFiles_Sha256", "DistrictId", "Sha256"),
    sa.Index("IX_IngestionFiles_Drop", "DropId", "DropVersion"),
    schema="dm",
)

# A person's acceptance of a failed gate, for one drop version (lib/students/gates.py): who, why, and the figure accepted.
gate_acceptances = sa.Table(
    "GateAcceptances", ours,
    sa.Column("AcceptanceId", sa.Integer, sa.Identity()),
    sa.Column("DropId", text(200), nullable=False),
    sa.Column("DropVersion", text(32), nullable=False),
    sa.Column("Gate", text(64), nullable=False),
    sa.Column("Figure", text(500), nullable=False),
    sa.Column("Reason", text(1000), nullable=False),
    sa.Column("AcceptedBy", text(200), nullable=False),
    sa.Column("AcceptedAt", timestamp(), nullable=False),
    sa.Column("RunId", text(64)),
    sa.PrimaryKeyConstraint("AcceptanceId", name="PK_GateAcceptances"),
    sa.Index("IX_GateAcceptances_Drop", "DropId", "DropVersion", "Gate"),
    schema="dm",
)

# Suggested counterparts of students no identifier links (lib/students/suggest.py), one row per pair ever
# suggested: they hold student identifiers, so they stay here, never in logs or metadata. Append-only.
link_suggestions = sa.Table(
    "LinkSuggestions", ours,
    sa.Column("SuggestionId", sa.Integer, sa.Identity()),
    sa.Column("AccountInfoId", sa.Integer, nullable=False),
    sa.Column("Cause", text(32), nullable=False),  # unknown_<source>_student or no_classlink_account
    sa.Column("Subjects", text(20)),  # the subjects the identifier came in (unknown_<source>_student)
    sa.Column("FromId", key(64), nullable=False),  # the unlinked identifier: Star's, or the PowerSchool number
    sa.Column("ToId", key(64), nullable=False),  # the counterpart: a PowerSchool number, or a ClassLink UserId
    sa.Column("Score", sa.Numeric(5, 4, asdecimal=False), nullable=False),  # 0 to 1
    sa.Column("Evidence", text(500), nullable=False),  # which fields agreed and which did not, no values
    sa.Column("DropId", text(200), nullable=False),  # the drop that first suggested it
    sa.Column("CreatedAt", timestamp(), nullable=False),
    # open until a person decides: set once, by a conditional UPDATE that only an open suggestion passes (review.py);
    # conflict: accepted twice for one identifier before this column existed, applied again only when decided again
    sa.Column("Status", text(8), nullable=False, server_default="open"),
    sa.PrimaryKeyConstraint("SuggestionId", name="PK_LinkSuggestions"),
    sa.UniqueConstraint("AccountInfoId", "Cause", "FromId", "ToId", name="UQ_LinkSuggestions_Pair"),
    schema="dm",
)
# one accepted counterpart per identifier, whoever decides at the same time (migration 0010)
ACCEPTED_ONCE = sa.Index("UQ_LinkSuggestions_Accepted", link_suggestions.c.AccountInfoId, link_suggestions.c.Cause,
                         link_suggestions.c.FromId, unique=True,
                         **{f"{d}_where": link_suggestions.c.Status == "accepted" for d in ("postgresql", "sqlite",
                                                                                          "mssql")})
NO_CLASSLINK = "no_classlink_account"  # the cause of a student without ClassLink (lib/students/suggest.py)
# one student per accepted ClassLink user, whoever decides at the same time (migration 0012)
USER_ACCEPTED_ONCE = sa.Index(
    "UQ_LinkSuggestions_UserAccepted", link_suggestions.c.AccountInfoId, link_suggestions.c.ToId, unique=True,
    **{f"{d}_where": (link_suggestions.c.Status == "accepted") & (link_suggestions.c.Cause == NO_CLASSLINK)
       for d in ("postgresql", "sqlite", "mssql")})
# A person's decision on a suggestion: who, why, when. Append-only; the latest per suggestion holds.
link_decisions = sa.Table(
    "LinkDecisions", ours,
    sa.Column("DecisionId", sa.Integer, sa.Identity()),
    sa.Column("SuggestionId", sa.Integer, nullable=False),
    sa.Column("Decision", text(8), nullable=False),  # accepted or rejected
    sa.Column("DecidedBy", text(200), nullable=False),
    sa.Column("Reason", text(1000), nullable=False),
    sa.Column("DecidedAt", timestamp(), nullable=False),
    sa.PrimaryKeyConstraint("DecisionId", name="PK_LinkDecisions"),
    sa.Index("IX_LinkDecisions_Suggestion", "SuggestionId"),
    schema="dm",
)

# Which column of the roster's validated frame (PowerSchool's or OneRoster's) each warehouse column is loaded from
# (the roster's links and counts, and the stamps, are added by identity.py).
ROSTER_FROM = {"StudentNumber": "student_number", "FirstName": "first_name", "LastName": "last_name",
               "Email": "email", "GradeLevel": "grade_level", "SchoolId": "school_id"}
# Which common results column (lib/sources/base.py RESULT_COLUMNS) each is loaded from; StudentNumber is the
# linked student's PowerSchool number (identity.py), not an assessment's column.
RESULTS_FROM = {"Subject": "subject", "TestKey": "test_key", "SchoolYear": "school_year", "CompletedAt": "completed_at", "Grade": "grade",
                     "ScaledScore": "scaled_score", "PercentileRank": "percentile_rank",
                     "UnifiedScore": "unified_score", "BenchmarkCategory": "benchmark_category",
                     "ScreeningWindow": "screening_window", "AssessmentStatus": "assessment_status",
                     "DeactivationReason": "deactivation_reason"}


VALUE_TOO_LONG = "value_too_long"
# a character a target database refuses in text: NUL (PostgreSQL refuses it in every text column; SQLite and SQL
# Server would store it inside the value), refused per row on every dialect alike
TEXT_NOT_STORABLE = "text_not_storable"


def max_lengths(table: sa.Table, loaded_from: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Frame column -> (warehouse column, its length) for the text columns that have one: a longer value is
    rejected per row before the load, on every backend (SQLite would store it, SQL Server would fail the load).
    Lengths count as NVARCHAR(n) does, in UTF-16 code units: a character outside the Basic Multilingual Plane
    (most emoji) counts two; PostgreSQL's VARCHAR(n) counts it once, so what fits SQL Server fits it too."""
    return {frame_col: (f"{table.schema}.{table.name}.{col}", table.c[col].type.length)
            for col, frame_col in loaded_from.items() if getattr(table.c[col].type, "length", None)}


def utf16_units(text: pl.Expr) -> pl.Expr:
    """The length of a text as SQL Server's NVARCHAR counts it: one unit per character, two above U+FFFF."""
    return text.str.len_chars() + text.str.count_matches(r"[\x{10000}-\x{10FFFF}]")


def could_be_too_long(lengths: dict[str, tuple[str, int]], read: pl.DataFrame) -> dict[str, tuple[str, int]]:
    """The columns of `lengths` that can hold too long a value, judged on `read`, the values as read (the chain
    sees them stripped or emptied, never longer): a text has no more UTF-16 units than UTF-8 bytes, so a column
    whose longest value in bytes fits its bound is left out. Counting units is a regex over every value; the bytes
    are known. A column `read` lacks is kept."""
    present = [c for c in lengths if c in read.columns]
    longest = read.select(pl.col(c).str.len_bytes().max() for c in present).row(0) if present else ()
    fits = {c for c, n in zip(present, longest) if n is None or n <= lengths[c][1]}
    return {c: bound for c, bound in lengths.items() if c not in fits}


def value_too_long(lengths: dict[str, tuple[str, int]], chain=None):
    """Adds a `value_too_long` reason per length-bound column to a polars when/then chain of row reasons."""
    for frame_col, (target, n) in lengths.items():
        cond = utf16_units(pl.col(frame_col)) > n
        text = pl.lit(f"{VALUE_TOO_LONG}: {frame_col} longer than {n} characters ({target})")
        chain = pl.when(cond).then(text) if chain is None else chain.when(cond).then(text)
    return chain


def not_storable(lengths: dict[str, tuple[str, int]], chain=None, read: pl.DataFrame | None = None):
    """`value_too_long`, after a `text_not_storable` reason per stored text column holding a NUL character. With
    `read`, the values as read, only the columns that can be too long are measured (`could_be_too_long`)."""
    for frame_col, (target, _n) in lengths.items():
        cond = pl.col(frame_col).str.contains("\x00", literal=True)
        text = pl.lit(f"{TEXT_NOT_STORABLE}: {frame_col} holds a NUL character, which {target} cannot store")
        chain = pl.when(cond).then(text) if chain is None else chain.when(cond).then(text)
    return value_too_long(lengths if read is None else could_be_too_long(lengths, read), chain)


_SCHEMAS = ("dm", "dbo")
BATCH_ROWS = 5_000
# SQL Server refuses a statement with more than 2,100 parameters: a list of values that grows with data is sent
# in parts of at most this many (the rest of the statement binds a few more)
IN_LIST_MAX = 2_000


def chunked(values, size: int = IN_LIST_MAX) -> Iterator[list]:
    """`values` (sorted, so that statements repeat) in lists of at most `size`."""
    values = sorted(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def make_engine(url: str, transactional_ddl: bool = False) -> Engine:
    """`transactional_ddl` (SQLite): the driver leaves transactions to us, and each begins with BEGIN. Python's
    sqlite3 begins one only before a row is written, so the DDL before it is committed as it runs: a migration
    killed halfway left its tables made under the old revision, and every upgrade after it failed."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, hide_parameters=True)
    if engine.dialect.name == "sqlite" and transactional_ddl:
        sa.event.listen(engine, "connect", lambda dbapi, _record: setattr(dbapi, "isolation_level", None))
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    if engine.dialect.name == "sqlite":
        # SQLite has no schemas: dm.X and dbo.X live in the one file.
        engine = engine.execution_options(schema_translate_map={s: None for s in _SCHEMAS})
    return engine


def read_table(engine: Engine, table: sa.Table, where=None) -> pl.DataFrame:
    with engine.connect() as conn:
        return read_rows(conn, table, where)


def read_rows(conn: sa.Connection, table: sa.Table, where=None) -> pl.DataFrame:
    """`read_table` on a connection already open (inside its transaction)."""
    stmt = sa.select(table) if where is None else sa.select(table).where(where)
    result = conn.execute(stmt)
    return pl.DataFrame([tuple(r) for r in result.fetchall()], schema=list(result.keys()), orient="row",
                        infer_schema_length=None)


COPY_ROWS = 200_000


def _insert(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
    """Bulk insert inside the caller's transaction: COPY on PostgreSQL, batched executemany elsewhere."""
    if frame.is_empty():
        return
    frame = frame.select([c.name for c in table.columns if c.name in frame.columns])
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, frame)
        return
    if conn.dialect.name == "sqlite":
        # executemany of plain tuples: the statement names only our own table and columns, values are bound
        prep = conn.dialect.identifier_preparer
        statement = (f"INSERT INTO {prep.quote(table.name)} ({', '.join(prep.quote(c) for c in frame.columns)}) "
                     f"VALUES ({', '.join('?' for _ in frame.columns)})")
        for chunk in frame.iter_slices(BATCH_ROWS * 10):
            conn.exec_driver_sql(statement, chunk.rows())
        return
    for chunk in frame.iter_slices(BATCH_ROWS):
        conn.execute(table.insert(), chunk.to_dicts())


def _copy(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
    # The statement names only our own table and columns; the rows travel as a CSV data stream, never as SQL.
    prep = conn.dialect.identifier_preparer
    columns = ", ".join(prep.quote(c) for c in frame.columns)
    statement = f"COPY {prep.format_table(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for chunk in frame.iter_slices(COPY_ROWS):
                copy.write(chunk.write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f"))
    except conn.dialect.dbapi.Error as exc:
        # The driver's own error, as SQLAlchemy wraps any other: callers catch one kind (sa.exc.DBAPIError).
        raise sa.exc.DBAPIError.instance(statement, None, exc, conn.dialect.dbapi.Error,
                                         hide_parameters=True) from None
    finally:
        cursor.close()


def current_numbers(conn: sa.Connection, account_info_id: int) -> set[str]:
    """The student numbers of the district's current roster in dm.StudentRoster."""
    r = student_roster.c
    return set(conn.execute(sa.select(r.StudentNumber).where(
        (r.AccountInfoId == account_info_id) & (r.IsCurrent == sa.true()))).scalars())


# ---- staging, then a short apply --------------------------------------------------------------------------------
# A load bulk-copies its rows into a staging table under its own LoadId, committed on their own (COPY on
# PostgreSQL, the driver's bulk copy on SQL Server); one short transaction then replaces the district's rows from
# staging on the server, and the load's staged rows are deleted (never a TRUNCATE: other loads stage beside it).

def _staging(table: sa.Table) -> sa.Table:
    """`table`'s columns, all nullable, after the LoadId that keeps each load's rows apart (migration 0007)."""
    return sa.Table(f"{table.name}Staging", ours, sa.Column("LoadId", key(32), nullable=False),
                    *(sa.Column(c.name, c.type) for c in table.columns), schema=table.schema)


STAGING = {t.name: _staging(t) for t in (student_roster, assessment_results, assessment_scores)}
BULK_COPY_TIMEOUT_S = 3_600
# rows per bulk-copy commit and per DELETE of staged rows on SQL Server: the locks one statement holds stay bounded
# (staging never escalates to a table lock, migration 0007, so other districts' loads go on beside it)
STAGING_BATCH_ROWS = 50_000


def new_load_id() -> str:
    """32 hex characters: the time in nanoseconds, then 64 random bits. Ever-increasing, so that SQL Server appends
    each load's rows at the end of staging's clustered key (migration 0009), and the age of a load's rows can be
    read from the key itself (`sweep_staging`)."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


def sweep_staging(engine: Engine, older_than_hours: float) -> int:
    """Deletes the staged rows of loads that started more than `older_than_hours` ago: what a load killed before it
    could clean up leaves behind. Returns how many rows went."""
    cutoff = f"{int(time.time_ns() - older_than_hours * 3_600e9):016x}"
    return sum(_delete_staged(engine, staging, "LoadId", "<", cutoff) for staging in STAGING.values())


def _delete_staged(engine: Engine, staging: sa.Table, column: str, op: str, value) -> int:
    """Staged rows whose `column` ("LoadId" or "AccountInfoId") is `op` ("=" or "<") `value`: one DELETE, or on
    SQL Server DELETE TOP (n) until none is left, each in its own transaction (the locks one holds stay bounded)."""
    if engine.dialect.name != "mssql":
        where = staging.c[column] == value if op == "=" else staging.c[column] < value
        with engine.begin() as conn:
            return conn.execute(staging.delete().where(where)).rowcount
    # T-SQL's DELETE TOP, which SQLAlchemy does not express: our own table, column and constants; the value is bound
    sql = (f"DELETE TOP ({STAGING_BATCH_ROWS}) FROM {engine.dialect.identifier_preparer.format_table(staging)} "
           f"WHERE [{column}] {'=' if op == '=' else '<'} :value")
    statement = sa.text(sql)
    deleted = 0
    while True:
        with engine.begin() as conn:
            n = conn.execute(statement, {"value": value}).rowcount
        deleted += n
        if n < STAGING_BATCH_ROWS:
            return deleted


STAGING_STREAMS = 2  # concurrent bulk copies into staging, each on its own connection (not on SQLite)


def _stage_all(engine: Engine, frames: list[tuple[sa.Table, pl.DataFrame]], load_id: str) -> None:
    """Each frame into its table's staging table. On a server the copies run as concurrent streams, each frame cut
    in parts of about equal size: the server parses each stream on a core of its own (most of a copy's cost)."""
    parts = []
    for table, frame in frames:
        if frame.is_empty():
            continue
        # in the target's key order: the apply's INSERT ... SELECT then appends to the key's B-tree instead of
        # splitting pages at random (measured 9.3 s instead of 21.3 s for 3.2 million results copied straight in)
        frame = (frame.select([c.name for c in table.columns if c.name in frame.columns])
                 .sort([c.name for c in table.primary_key.columns]).with_columns(pl.lit(load_id).alias("LoadId")))
        parts.append((STAGING[table.name], frame))
    if engine.dialect.name == "sqlite":  # one writer at a time there
        for staging, frame in parts:
            _copy_into(engine, staging, frame)
        return
    size = max(1, -(-sum(f.height for _, f in parts) // (2 * STAGING_STREAMS)))  # two parts a stream, or more
    with ThreadPoolExecutor(max_workers=STAGING_STREAMS) as pool:
        for done in [pool.submit(_copy_into, engine, staging, part)
                     for staging, frame in parts for part in frame.iter_slices(size)]:
            done.result()


def _copy_into(engine: Engine, staging: sa.Table, frame: pl.DataFrame) -> None:
    if engine.dialect.name == "mssql":
        _bulk_copy(engine, staging, frame)
        return
    with engine.begin() as conn:
        _insert(conn, staging, frame)


def _bulk_copy(engine: Engine, staging: sa.Table, frame: pl.DataFrame) -> None:
    """SQL Server: mssql-python's bulk copy, straight from the frame's Arrow buffers (no row passes through
    Python); it opens a connection of its own and commits there."""
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()
        cursor.bulkcopy_arrow(f"{staging.schema}.{staging.name}", frame, column_mappings=frame.columns,
                              keep_nulls=True, timeout=BULK_COPY_TIMEOUT_S, batch_size=STAGING_BATCH_ROWS,
                              check_constraints=True)  # with no constraint to skip, INSERT is the only grant needed
    except Exception as exc:  # noqa: BLE001 - see below
        # The bulk copy runs in mssql_py_core, whose errors are not the driver's (nor is the ValueError of a type
        # it cannot map): each becomes the one error a load's callers catch, its text kept out of every message.
        raise refused(f"bulk copy into {staging.fullname}", exc) from None
    finally:
        raw.close()


def refused(statement: str, exc: BaseException) -> sa.exc.DBAPIError:
    """Any error a load meets, as SQLAlchemy's DBAPIError (what the load's callers catch), parameters hidden; its
    callers report the error's class, never its text (which can quote values)."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc
    return sa.exc.DBAPIError(statement, None, exc, hide_parameters=True)


def unstage(engine: Engine, load_id: str) -> None:
    for staging in STAGING.values():
        _delete_staged(engine, staging, "LoadId", "=", load_id)


SCORES = "Scores"  # the results frame's optional column: each test event's other scores, [{name, value}, ...]
TEST_EVENT = ("AccountInfoId", "Assessment", "Subject", "TestKey")  # what ties a score to its result row


def scores_of(results: pl.DataFrame) -> pl.DataFrame:
    """dm.AssessmentScores' rows of a results frame: its `Scores` exploded, one row per score, keyed by the result
    row's test event and stamped with its drop and time; none where the frame has no `Scores`."""
    if SCORES not in results.columns:
        return pl.DataFrame()
    return (results.select(*TEST_EVENT, SCORES, "DropId", "LoadedAt").explode(SCORES)
            .filter(pl.col(SCORES).is_not_null())  # a row without scores (an empty or null list)
            .unnest(SCORES).rename({"name": "ScoreName", "value": "ScoreValue"}))


@contextmanager
def staged(engine: Engine, roster: pl.DataFrame | None = None, results: pl.DataFrame | None = None) -> Iterator[str]:
    """Stages a load's roster, results and their scores; yields its LoadId for `apply_roster`/`apply_results`;
    deletes its staged rows when the load ends, applied or not."""
    load_id = new_load_id()
    try:
        frames = [] if roster is None else [(student_roster, roster.with_columns(pl.lit(True).alias("IsCurrent")))]
        if results is not None:
            frames += [(assessment_results, results), (assessment_scores, scores_of(results))]
        _stage_all(engine, frames, load_id)
        fault_point("after_stage")
        yield load_id
    finally:
        fault_point("before_unstage")
        try:
            unstage(engine, load_id)
        except sa.exc.DBAPIError:
            # what the load did stands either way (committed or rolled back): rows left here are removed by the
            # district's next load (clear_district_staging) or by age (sweep_staging)
            pass


def clear_district_staging(engine: Engine, account_info_id: int) -> int:
    """Deletes the district's staged rows: with the district's lock held, before its load stages, every such row
    is a dead load's (killed, or its session lost). Returns how many went."""
    return sum(_delete_staged(engine, staging, "AccountInfoId", "=", account_info_id) for staging in STAGING.values())


def _from_staging(conn: sa.Connection, table: sa.Table, load_id: str) -> int:
    staging = STAGING[table.name]
    names = [c.name for c in table.columns]
    statement = table.insert().from_select(names, sa.select(*(staging.c[n] for n in names))
                                           .where(staging.c.LoadId == load_id))
    # SQLAlchemy reports an INSERT's row count only when asked to keep it
    return conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount


def apply_roster(conn: sa.Connection, account_info_id: int, load_id: str) -> int:
    """The district's roster becomes the staged one, in the caller's transaction; a student it no longer lists
    stays, marked not current, with the drop that last listed them (never deleted)."""
    r, s = student_roster.c, STAGING[student_roster.name].c
    district = r.AccountInfoId == account_info_id
    # IN (subquery), not a correlated EXISTS: SQLite builds the staged numbers' set once (EXISTS rescanned staging,
    # which has no index, for every row of the district); PostgreSQL and SQL Server plan both as a semi-join
    conn.execute(student_roster.delete().where(
        district & r.StudentNumber.in_(sa.select(s.StudentNumber).where(s.LoadId == load_id))))
    # what is left of the district is what the drop does not list
    conn.execute(student_roster.update().where(district & (r.IsCurrent == sa.true())).values(IsCurrent=False))
    return _from_staging(conn, student_roster, load_id)


# What a load of results replaces, a scope: (assessment, subject, school year, term), the term None where the
# assessment's export holds the whole school year so far (lib/load/order.py `results_scopes`)
SCOPE = ("Assessment", "Subject", "SchoolYear", "ScreeningWindow")
Scope = tuple[str, str, str, "str | None"]


def scope_term(results: pl.DataFrame) -> pl.Expr:
    """A results row's term as its scope has it: its ScreeningWindow where its assessment's export is one term's,
    else none (the whole school year; so too for a frame without the column, whose rows hold no term)."""
    from ..sources import TERM_SNAPSHOTS  # not at the top: each source's module imports this one
    if "ScreeningWindow" not in results.columns:
        return pl.lit(None, pl.Utf8)
    return pl.when(pl.col("Assessment").is_in(list(TERM_SNAPSHOTS))).then(pl.col("ScreeningWindow"))


def results_scopes(results: pl.DataFrame) -> list[Scope]:
    """What a load of these results replaces: each (assessment, subject, school year), and for an assessment whose
    export is one term's (MAP Growth's), each term of it (`Source.snapshot`)."""
    return results.select(*SCOPE[:3], scope_term(results).alias(SCOPE[3])).unique().sort(SCOPE).rows()


def _in_scope(account_info_id: int, scope: Scope):
    c = assessment_results.c
    assessment, subject, year, term = scope
    where = ((c.AccountInfoId == account_info_id) & (c.Assessment == assessment) & (c.Subject == subject)
             & (c.SchoolYear == year))
    return where if term is None else where & (c.ScreeningWindow == term)


def in_scopes(scopes: list[Scope], assessment: str, subject: str, year: str, term: str | None) -> bool:
    """Whether a row of these values is in one of `scopes`."""
    return (assessment, subject, year, None) in scopes or (term is not None and
                                                           (assessment, subject, year, term) in scopes)


def _scores_in_scope(account_info_id: int, scope: Scope):
    """The scores of the scope's result rows (a score has no school year of its own: its test event has)."""
    s, r = assessment_scores.c, assessment_results.c
    return ((s.AccountInfoId == account_info_id) & (s.Assessment == scope[0]) & (s.Subject == scope[1])
            & s.TestKey.in_(sa.select(r.TestKey).where(_in_scope(account_info_id, scope))))


def apply_results(conn: sa.Connection, account_info_id: int, load_id: str, scopes: list[Scope]) -> int:
    """Each scope of `scopes` is replaced by the staged results and their scores, in the caller's transaction.
    Returns the results written."""
    for scope in scopes:
        # the scores first: they are found through the result rows about to go
        conn.execute(assessment_scores.delete().where(_scores_in_scope(account_info_id, scope)))
        conn.execute(assessment_results.delete().where(_in_scope(account_info_id, scope)))
    staged, r = STAGING[assessment_results.name].c, assessment_results.c
    for assessment in sorted({a for a, _subject, _year, _term in scopes}):
        # the tests it brings held under another term, school year or subject go too (the district moved its dates;
        # an export's older layout named the subject otherwise), or their key would refuse this load and every later
        # one, or hold them twice; looked for only where the district holds the assessment (a first load does not)
        held = (r.AccountInfoId == account_info_id) & (r.Assessment == assessment)
        if conn.execute(sa.select(r.TestKey).where(held).limit(1)).first() is None:
            continue
        tests = sa.select(staged.TestKey).where((staged.LoadId == load_id) & (staged.Assessment == assessment))
        for table in (assessment_scores, assessment_results):
            c = table.c
            conn.execute(table.delete().where((c.AccountInfoId == account_info_id) & (c.Assessment == assessment)
                                              & c.TestKey.in_(tests)))
    written = _from_staging(conn, assessment_results, load_id)
    _from_staging(conn, assessment_scores, load_id)
    return written


def replace_roster(engine: Engine, account_info_id: int, roster: pl.DataFrame) -> int:
    """Staged, then applied in a transaction of its own."""
    with staged(engine, roster=roster) as load_id, engine.begin() as conn:
        return apply_roster(conn, account_info_id, load_id)


def replace_results(engine: Engine, account_info_id: int, results: pl.DataFrame) -> int:
    """Staged, then applied in a transaction of its own."""
    with staged(engine, results=results) as load_id, engine.begin() as conn:
        return apply_results(conn, account_info_id, load_id, results_scopes(results))


def received_before(engine: Engine, drop_id: str, version: str) -> bool:
    """Whether a run received this version of the drop before (its audit rows are there)."""
    f = ingestion_files.c
    with engine.connect() as conn:
        return conn.execute(sa.select(f.DropId).where((f.DropId == drop_id) & (f.DropVersion == version))
                            .limit(1)).first() is not None


def _receipts(conn: sa.Connection, drop_id: str) -> dict[tuple, tuple[str, set]]:
    """The drop's receipts, (run, received at) -> (version, {(file name, SHA-256)}), in the audit's own order (the
    order the database took the rows: runs on hosts whose clocks differ agree on it)."""
    f = ingestion_files.c
    receipts: dict[tuple, tuple[str, set]] = {}
    for r in conn.execute(sa.select(f.RunId, f.ReceivedAt, f.DropVersion, f.FileName, f.Sha256)
                          .where(f.DropId == drop_id).order_by(f.FileId)):
        receipts.setdefault((r.RunId, r.ReceivedAt), (r.DropVersion, set()))[1].add((r.FileName, r.Sha256))
    return receipts


def receipt_of(conn: sa.Connection, drop_id: str, files: dict[str, str]) -> str | None:
    """The run of the drop's newest receipt of exactly these files (name -> SHA-256): who received a drop kept at
    rest by a release that did not say."""
    return next((run for (run, _at), (_v, held) in reversed(_receipts(conn, drop_id).items())
                 if held == set(files.items())), None)


def later_receipt(conn: sa.Connection, drop_id: str, files: dict[str, str]) -> str:
    """The drop's newest receipt, said, when it brought other bytes than `files` (name -> SHA-256): bytes received
    after those a run loads ("": none; the newest receipt is of these bytes, under whatever version)."""
    receipts = _receipts(conn, drop_id)
    if not receipts:
        return ""
    (_run, at), (version, held) = list(receipts.items())[-1]
    if held == set(files.items()):
        return ""
    return f"other bytes of {drop_id} (version {version}) were received {at:%Y-%m-%d %H:%M:%S}"


def record_received(engine: Engine, drop_id: str, district_id: int, version: str, files: list,
                    run_id: str | None) -> dict[str, str | None]:
    """Append one audit row per file of this receipt (outcome "received"); returns, per file, the earlier drop
    that already brought the same bytes to this district (None: new content)."""
    received_at = now()
    f = ingestion_files.c
    with engine.begin() as conn:
        earlier = {sha: first for part in chunked({x.sha256 for x in files}) for sha, first in conn.execute(
            sa.select(f.Sha256, sa.func.min(f.DropId))
            .where((f.DistrictId == district_id) & (f.DropId != drop_id) & f.Sha256.in_(part))
            .group_by(f.Sha256))}
        if files:
            conn.execute(ingestion_files.insert(), [
                {"DropId": drop_id, "DropVersion": version, "FileName": x.name, "DistrictId": district_id,
                 "Sha256": x.sha256, "SizeBytes": x.size, "RunId": run_id, "ReceivedAt": received_at,
                 "Outcome": "received", "OutcomeAt": received_at, "DuplicateOf": earlier.get(x.sha256)}
                for x in files
            ])
    return {x.name: earlier.get(x.sha256) for x in files}


def mark_files(target: Engine | sa.Connection, drop_id: str, run_id: str | None, outcome: str,
               names: list[str] | None = None, received_by: str | None = None) -> None:
    """Move this run's audit rows (all, or the named files) from "received" to their outcome; a file already
    decided (halted, say) keeps its outcome. "loaded" becomes "duplicate" for bytes an earlier drop brought.
    `received_by`: the run that received the drop this one loads, when another did (a re-execution from the UI, a
    subset run, loading what is kept at rest): its rows of the files, "received" or left "failed", "interrupted",
    "blocked" or "superseded" by its end (a re-execution that accepts the check), take the outcome too. On a
    connection, inside its transaction (a load marks its files in the load's own transaction)."""
    f = ingestion_files.c
    theirs = ("received", "failed", "interrupted", "blocked", "superseded")
    where = (f.DropId == drop_id) & (((f.RunId == run_id) & (f.Outcome == "received")) | (
        (f.RunId == received_by) & (f.RunId != run_id) & f.Outcome.in_(theirs)))
    value = sa.case((f.DuplicateOf.is_not(None), "duplicate"), else_="loaded") if outcome == "loaded" else outcome
    at = now()
    statements = [ingestion_files.update().where(where if part is None else where & f.FileName.in_(part))
                  .values(Outcome=value, OutcomeAt=at) for part in ([None] if names is None else chunked(names))]
    with nullcontext(target) if isinstance(target, sa.Connection) else target.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def undecided_runs(engine: Engine, district_id: int, except_run: str | None) -> list[tuple[str, str]]:
    """(RunId, DropId) of the district's other runs whose files the audit still shows `received`: runs under way,
    or runs that died before deciding them."""
    f = ingestion_files.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(f.RunId, f.DropId).distinct().where(
            (f.DistrictId == district_id) & (f.Outcome == "received") & f.RunId.is_not(None)
            & (f.RunId != (except_run or ""))).order_by(f.RunId))]


def under_other_ids(engine: Engine, district: str, account_info_id: int) -> dict[int, int]:
    """Rows of the district's drops (DropId "<district>/...") held under another AccountInfoId than the registry's,
    per id: what a changed account_info_id leaves behind."""
    found: dict[int, int] = {}
    with engine.connect() as conn:
        for table in (student_roster, assessment_results):
            c = table.c
            for old, n in conn.execute(sa.select(c.AccountInfoId, sa.func.count()).where(
                    c.DropId.startswith(f"{district}/", autoescape=True) & (c.AccountInfoId != account_info_id))
                    .group_by(c.AccountInfoId)):
                found[int(old)] = found.get(int(old), 0) + int(n)
    return found


def rekey(engine: Engine, district: str, old: int, new: int) -> dict[str, int]:
    """Move the rows of the district's drops from AccountInfoId `old` to `new`, and copy its link suggestions and
    their decisions there (`_rekey_links`), in one transaction; refused (ValueError) where `new` already holds rows
    of the district: remove one set first. Returns the rows moved, and the suggestions copied (dm.LinkSuggestions)."""
    if old == new:
        raise ValueError(f"{district}'s rows are under AccountInfoId {new} already, the registry's: --from names the "
                         "id they were loaded under before the registry changed")
    moved = {}
    with engine.begin() as conn:
        for table in (student_roster, assessment_results, assessment_scores):
            c = table.c
            ours = c.DropId.startswith(f"{district}/", autoescape=True)  # "_" in a key is no wildcard
            clash = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                ours & (c.AccountInfoId == new))).scalar_one()
            if clash and conn.execute(sa.select(sa.func.count()).select_from(table).where(
                    ours & (c.AccountInfoId == old))).scalar_one():
                raise ValueError(f"{table.fullname} holds rows of {district} under both {old} and {new}: remove "
                                 "the set that is wrong first")
            # copied, then deleted: the runtime login may not UPDATE these rows (lib/load/grants.py)
            theirs = ours & (c.AccountInfoId == old)
            conn.execute(table.insert().from_select([col.name for col in table.columns], sa.select(*(
                sa.literal(new, sa.Integer).label(col.name) if col.name == "AccountInfoId" else col
                for col in table.columns)).where(theirs)))
            moved[table.fullname] = conn.execute(table.delete().where(theirs)).rowcount
        moved[link_suggestions.fullname] = _rekey_links(conn, district, old, new)
        s = link_suggestions.c
        if not any(moved.values()) and not conn.execute(sa.select(sa.func.count()).where(
                (s.AccountInfoId == old) & s.DropId.startswith(f"{district}/", autoescape=True))).scalar_one():
            # a mistyped --from: said, not a success that moved nothing
            raise ValueError(f"no row of {district} is under AccountInfoId {old}: check --from (the id its rows "
                             "were loaded under before the registry changed)")
    return moved


def _rekey_links(conn: sa.Connection, district: str, old: int, new: int) -> int:
    """The district's link suggestions under `old` (those of its drops: another district's under a mistyped id
    are not its), with their decisions, copied under `new` (the runtime login may insert them and set a status,
    nothing more): every later drop applies the links a person accepted, which are looked up by the district's
    AccountInfoId. A pair `new` holds open takes the decision made under `old`."""
    s, d = link_suggestions.c, link_decisions.c
    held = {(r.Cause, r.FromId, r.ToId): r for r in conn.execute(
        sa.select(s.SuggestionId, s.Cause, s.FromId, s.ToId, s.Status).where(s.AccountInfoId == new))}
    theirs = conn.execute(sa.select(link_suggestions).where(
        (s.AccountInfoId == old) & s.DropId.startswith(f"{district}/", autoescape=True)).order_by(s.SuggestionId)).all()
    accepted = {(r.Cause, r.FromId): r.ToId for r in held.values() if r.Status == "accepted"}
    # and one ClassLink user to one student (migration 0012's index): the copy would be refused there
    users = {r.ToId: r.FromId for r in held.values() if r.Status == "accepted" and r.Cause == NO_CLASSLINK}
    if any(accepted.get((r.Cause, r.FromId), r.ToId) != r.ToId for r in theirs if r.Status == "accepted") or any(
            users.get(r.ToId, r.FromId) != r.FromId for r in theirs
            if r.Status == "accepted" and r.Cause == NO_CLASSLINK):
        raise ValueError(f"links accepted under AccountInfoId {old} and {new} give an identifier two different "
                         "students, or a ClassLink user to two students: review them (belleville-mtss links review "
                         "DISTRICT --all) and reject one first")
    copied = 0
    for r in theirs:
        there = held.get((r.Cause, r.FromId, r.ToId))
        if there is None:
            row = {k: v for k, v in r._mapping.items() if k != "SuggestionId"} | {"AccountInfoId": new}
            to = conn.execute(link_suggestions.insert().values(**row)).inserted_primary_key[0]
        elif there.Status == "open" and r.Status != "open":
            conn.execute(link_suggestions.update().where(s.SuggestionId == there.SuggestionId).values(Status=r.Status))
            to = there.SuggestionId
        else:
            continue
        decisions = conn.execute(sa.select(d.Decision, d.DecidedBy, d.Reason, d.DecidedAt)
                                 .where(d.SuggestionId == r.SuggestionId).order_by(d.DecisionId)).all()
        if decisions:
            conn.execute(link_decisions.insert(), [{**x._mapping, "SuggestionId": to} for x in decisions])
        copied += 1
    return copied


def count_rows(engine: Engine, table: sa.Table, account_info_id: int | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(table)
    if account_info_id is not None:
        stmt = stmt.where(table.c.AccountInfoId == account_info_id)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def load_figures(engine: Engine, table: sa.Table, account_info_id: int, drop_id: str,
                 scopes: list[Scope] | None = None) -> dict[str, int]:
    """What the table holds after one drop's load, read back: the district's rows in what the load replaced (the
    district's current roster, or the results' `scopes`), its keys held more
    than once, and the drop's rows stamped with another (or no) AccountInfoId."""
    c, key = table.c, [col for col in table.primary_key.columns if col.name != "AccountInfoId"]
    district = c.AccountInfoId == account_info_id
    if "IsCurrent" in c:
        district &= c.IsCurrent == sa.true()  # the roster's history stays beside what the load replaced
    repeated = (sa.select(*key).where(c.AccountInfoId == account_info_id).group_by(*key)
                .having(sa.func.count() > 1).subquery())
    with engine.connect() as conn:
        if scopes is None:
            rows = conn.execute(sa.select(sa.func.count()).select_from(table).where(district)).scalar_one()
        else:  # counted per scope and summed here: one parameter per district, whatever the number of scopes
            wanted = set(scopes)
            by = [c[name] for name in SCOPE]
            rows = sum(n for *scope, n in conn.execute(sa.select(*by, sa.func.count()).where(district).group_by(*by))
                       if in_scopes(wanted, *scope))
        stray = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            (c.DropId == drop_id) & ((c.AccountInfoId != account_info_id) | c.AccountInfoId.is_(None)))).scalar_one()
        duplicates = conn.execute(sa.select(sa.func.count()).select_from(repeated)).scalar_one()
    return {"rows": int(rows), "duplicate_keys": int(duplicates), "other_account_rows": int(stray)}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
