"""Staging tables: a load bulk-copies its rows here first (COPY on PostgreSQL, the driver's bulk copy on SQL
Server), outside the transaction that then replaces the district's rows from them on the server. That transaction
is short, and a reader sees the old rows or the new, never an empty district (lib/load/warehouse.py).

Each load's rows carry its LoadId and are deleted by it when the load ends; a table is never truncated (other
districts stage beside it). On PostgreSQL they are UNLOGGED: a crash empties them, which costs nothing (a load
re-stages), and their writes skip the WAL. On SQL Server lock escalation is disabled on the staging and the target
tables: a load of more than 5,000 rows would otherwise take a table lock that every other district's load waits on.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import key, text, timestamp

revision = "0007"
down_revision = "0006"


def _roster_columns() -> list[sa.Column]:
    return [sa.Column("AccountInfoId", sa.Integer), sa.Column("StudentNumber", key(20)),
            sa.Column("FirstName", text(100)), sa.Column("LastName", text(100)), sa.Column("Email", text(320)),
            sa.Column("GradeLevel", text(8)), sa.Column("SchoolId", text(20)), sa.Column("ClassLinkUserId", text(64)),
            sa.Column("StarTestCount", sa.Integer), sa.Column("DropId", text(200)),
            sa.Column("LoadedAt", timestamp()), sa.Column("IsCurrent", sa.Boolean)]


def _results_columns() -> list[sa.Column]:
    return [sa.Column("AccountInfoId", sa.Integer), sa.Column("Subject", key(3)), sa.Column("TestKey", key(120)),
            sa.Column("StudentNumber", key(20)), sa.Column("SchoolYear", text(9)),
            sa.Column("CompletedAt", timestamp()), sa.Column("Grade", text(12)), sa.Column("ScaledScore", sa.Integer),
            sa.Column("PercentileRank", sa.Integer), sa.Column("UnifiedScore", sa.Integer),
            sa.Column("BenchmarkCategory", text(100)), sa.Column("ScreeningWindow", text(200)),
            sa.Column("DropId", text(200)), sa.Column("LoadedAt", timestamp()),
            sa.Column("AssessmentStatus", text(12)), sa.Column("DeactivationReason", text(200))]


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    prefixes = ["UNLOGGED"] if dialect == "postgresql" else []
    for name, columns in (("StudentRosterStaging", _roster_columns()),
                          ("AssessmentResultsStaging", _results_columns())):
        # no index: the apply reads a load's rows in one scan, and an index would cost every staged row
        op.create_table(name, sa.Column("LoadId", key(32), nullable=False), *columns, schema=dm(),
                        prefixes=prefixes)
    if dialect == "mssql":
        op.execute("ALTER TABLE dm.StudentRoster SET (LOCK_ESCALATION = DISABLE)")
        op.execute("ALTER TABLE dm.AssessmentResults SET (LOCK_ESCALATION = DISABLE)")
        op.execute("ALTER TABLE dm.StudentRosterStaging SET (LOCK_ESCALATION = DISABLE)")
        op.execute("ALTER TABLE dm.AssessmentResultsStaging SET (LOCK_ESCALATION = DISABLE)")
