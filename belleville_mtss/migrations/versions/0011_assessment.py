"""Results of more than one assessment: `dm.AssessmentResults.Assessment`, in its key, and `dm.AssessmentScores`.

- `dm.AssessmentResults` gains `Assessment` (which assessment: a source's name, `star`, `map_growth`, ...), NOT NULL;
  every row already there is Star's and becomes `star`. Its primary key, under the same name, becomes (AccountInfoId,
  Assessment, Subject, TestKey): two vendors' test ids may coincide. `Subject` widens from 3 characters to 40 (other
  vendors name subjects in words). No other value changes: Star's subjects stay SR, SM and SEL, as reports read them.
- `dm.AssessmentScores`: every score of a test event beyond the common columns, one row per score as the vendor names
  it (text: a number or a level), so that nothing a vendor sends is lost; replaced with its results.
- The staging tables follow (lib/load/warehouse.py `_staging`): `dm.AssessmentResultsStaging` gains `Assessment` and
  the wider `Subject`; `dm.AssessmentScoresStaging` is made as 0007 and 0009 made the others (UNLOGGED on PostgreSQL;
  on SQL Server clustered on LoadId, lock escalation disabled; the new target keeps the server's default, TABLE).
  Rows staged before this revision are deleted, as in 0009: their loads ended or died.

Per dialect: PostgreSQL and SQL Server alter the table in place (its grants stay). The primary key is found in the
catalog by what it is, not by the name we gave it (an earlier release's table carries the server's name), dropped,
and made again after `Subject` is altered (SQL Server refuses to alter a column its primary key uses). On SQL
Server our two other indexes are dropped first and made again last, so that neither is rebuilt twice (once when the
clustered key goes, once when it comes back); the column is added with a named default that fills the existing rows,
then the default is dropped. SQLite cannot change a primary key: the table is rebuilt (renamed, made anew, its rows
copied, the old one dropped), as 0002 rebuilt dm.IngestionFiles. docs/deploy.md has the plan for a populated
warehouse.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mssql

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import key, text, timestamp

revision = "0011"
down_revision = "0010"

KEY = ["AccountInfoId", "Assessment", "Subject", "TestKey"]
INDEXES = [("IX_AssessmentResults_Student", ["AccountInfoId", "StudentNumber"]),
           ("IX_AssessmentResults_Drop", ["DropId"])]
STAR = "star"  # every row before this revision is Star's


def _results_columns() -> list[sa.Column]:
    """dm.AssessmentResults as this revision leaves it (what SQLite's rebuild makes)."""
    return [sa.Column("AccountInfoId", sa.Integer, autoincrement=False), sa.Column("Subject", key(40)),
            sa.Column("TestKey", key(120)), sa.Column("StudentNumber", key(20), nullable=False),
            sa.Column("SchoolYear", text(9), nullable=False), sa.Column("CompletedAt", timestamp(), nullable=False),
            sa.Column("Grade", text(12)), sa.Column("ScaledScore", sa.Integer), sa.Column("PercentileRank", sa.Integer),
            sa.Column("UnifiedScore", sa.Integer), sa.Column("BenchmarkCategory", text(100)),
            sa.Column("ScreeningWindow", text(200)), sa.Column("DropId", text(200), nullable=False),
            sa.Column("LoadedAt", timestamp(), nullable=False), sa.Column("AssessmentStatus", text(12)),
            sa.Column("DeactivationReason", text(200)), sa.Column("Assessment", key(40), nullable=False)]


def _scores_columns(nullable: bool) -> list[sa.Column]:
    """dm.AssessmentScores' columns; for its staging table all nullable (as `_staging` declares them)."""
    return [sa.Column("AccountInfoId", sa.Integer, autoincrement=False), sa.Column("Assessment", key(40)),
            sa.Column("Subject", key(40)), sa.Column("TestKey", key(120)), sa.Column("ScoreName", key(100)),
            sa.Column("ScoreValue", text(200)), sa.Column("DropId", text(200), nullable=nullable),
            sa.Column("LoadedAt", timestamp(), nullable=nullable)]


# The primary key of dm.AssessmentResults, found by what it is and dropped, whatever its name.
DROP_PRIMARY_KEY = {
    "postgresql": """DO $$
DECLARE pk name;
BEGIN
    SELECT conname INTO pk FROM pg_constraint WHERE conrelid = 'dm."AssessmentResults"'::regclass AND contype = 'p';
    IF pk IS NOT NULL THEN
        EXECUTE 'ALTER TABLE dm."AssessmentResults" DROP CONSTRAINT ' || quote_ident(pk);
    END IF;
END $$""",
    "mssql": """DECLARE @drop NVARCHAR(MAX) = (
    SELECT CONCAT(N'ALTER TABLE dm.[AssessmentResults] DROP CONSTRAINT ', QUOTENAME(name)) FROM sys.key_constraints
    WHERE parent_object_id = OBJECT_ID(N'dm.AssessmentResults') AND type = 'PK');
IF @drop IS NOT NULL EXEC sys.sp_executesql @drop""",
}

# SQL Server: the column with a default that fills the rows already there, named so that it is dropped by its name
# right after (SQLAlchemy cannot name a default); our own constants only
ADD_ASSESSMENT_MSSQL = (f"ALTER TABLE dm.[AssessmentResults] ADD [Assessment] "
                        f"{key(40).compile(dialect=mssql.dialect())} NOT NULL "
                        f"CONSTRAINT [DF_AssessmentResults_Assessment] DEFAULT N'{STAR}'")


def _alter_results(dialect: str, schema: str) -> None:
    """PostgreSQL and SQL Server: the table altered in place."""
    if dialect == "mssql":
        for name, _ in INDEXES:
            op.drop_index(name, "AssessmentResults", schema=schema)
    op.execute(DROP_PRIMARY_KEY[dialect])
    op.alter_column("AssessmentResults", "Subject", type_=key(40), existing_type=key(3),
                    existing_nullable=False, schema=schema)
    if dialect == "mssql":
        op.execute(ADD_ASSESSMENT_MSSQL)
        op.execute("ALTER TABLE dm.[AssessmentResults] DROP CONSTRAINT [DF_AssessmentResults_Assessment]")
    else:
        # a constant default: PostgreSQL fills the existing rows without rewriting the table
        op.add_column("AssessmentResults", sa.Column("Assessment", key(40), nullable=False, server_default=STAR),
                      schema=schema)
        op.alter_column("AssessmentResults", "Assessment", server_default=None, existing_type=key(40),
                        existing_nullable=False, schema=schema)
    op.create_primary_key("PK_AssessmentResults", "AssessmentResults", KEY, schema=schema)
    if dialect == "mssql":
        for name, on in INDEXES:
            op.create_index(name, "AssessmentResults", on, schema=schema)


def _rebuild_results() -> None:
    """SQLite: made anew with the new key, every row copied with Assessment `star`."""
    op.rename_table("AssessmentResults", "AssessmentResultsV10")
    new = op.create_table("AssessmentResults", *_results_columns(),
                          sa.PrimaryKeyConstraint(*KEY, name="PK_AssessmentResults"))
    copied = [c.name for c in new.columns if c.name != "Assessment"]
    old = sa.table("AssessmentResultsV10", *[sa.column(c) for c in copied])
    op.execute(new.insert().from_select([*copied, "Assessment"],
                                        sa.select(*[old.c[c] for c in copied], sa.literal(STAR, key(40)))))
    op.drop_table("AssessmentResultsV10")  # its indexes with it: their names are free again
    for name, on in INDEXES:
        op.create_index(name, "AssessmentResults", on)


def upgrade() -> None:
    dialect, schema = op.get_context().dialect.name, dm()
    op.execute(sa.table("AssessmentResultsStaging", schema=schema).delete())
    if dialect == "sqlite":
        _rebuild_results()
    else:
        _alter_results(dialect, schema)
    # staging mirrors the table (all nullable): on SQLite a rebuild of its own, elsewhere two ALTERs
    with op.batch_alter_table("AssessmentResultsStaging", schema=schema) as batch:
        batch.alter_column("Subject", type_=key(40), existing_type=key(3), existing_nullable=True)
        batch.add_column(sa.Column("Assessment", key(40)))

    op.create_table("AssessmentScores", *_scores_columns(nullable=False),
                    sa.PrimaryKeyConstraint(*KEY, "ScoreName", name="PK_AssessmentScores"), schema=schema)
    op.create_index("IX_AssessmentScores_Drop", "AssessmentScores", ["DropId"], schema=schema)
    # no index but SQL Server's clustered LoadId (0009): a load's apply reads its rows in one scan
    op.create_table("AssessmentScoresStaging", sa.Column("LoadId", key(32), nullable=False),
                    *_scores_columns(nullable=True), schema=schema,
                    prefixes=["UNLOGGED"] if dialect == "postgresql" else [])
    if dialect == "mssql":
        op.create_index("CX_AssessmentScoresStaging_LoadId", "AssessmentScoresStaging", ["LoadId"], schema=schema,
                        mssql_clustered=True)
        op.execute("ALTER TABLE dm.AssessmentScoresStaging SET (LOCK_ESCALATION = DISABLE)")
