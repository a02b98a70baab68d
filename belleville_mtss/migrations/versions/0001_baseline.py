"""Baseline: our four tables as the first releases created them (StudentRoster, AssessmentResults, IngestionErrors,
IngestionFiles). A warehouse whose tables an earlier release made is stamped at this revision, then upgraded.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import key, text, timestamp

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "StudentRoster",
        sa.Column("AccountInfoId", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("StudentNumber", key(20), primary_key=True),
        sa.Column("FirstName", text(100)),
        sa.Column("LastName", text(100)),
        sa.Column("Email", text(320)),
        sa.Column("GradeLevel", text(8)),
        sa.Column("SchoolId", text(20)),
        sa.Column("ClassLinkUserId", text(64)),
        sa.Column("StarTestCount", sa.Integer, nullable=False),
        sa.Column("DropId", text(200), nullable=False),
        sa.Column("LoadedAt", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("AccountInfoId", "StudentNumber", name="PK_StudentRoster"),
        schema=dm(),
    )
    op.create_table(
        "AssessmentResults",
        sa.Column("AccountInfoId", sa.Integer, autoincrement=False),
        sa.Column("Subject", key(3)),
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
        sa.PrimaryKeyConstraint("AccountInfoId", "Subject", "TestKey", name="PK_AssessmentResults"),
        schema=dm(),
    )
    op.create_table(
        "IngestionErrors",
        sa.Column("ErrorId", sa.Integer, autoincrement=True),
        sa.Column("OccurredAt", timestamp(), nullable=False),
        sa.Column("DistrictId", sa.Integer),
        sa.Column("DropId", text(200)),
        sa.Column("FileName", text(260)),
        sa.Column("Stage", text(32), nullable=False),
        sa.Column("Reason", text(64), nullable=False),
        sa.Column("RowCount", sa.Integer),
        sa.Column("Message", text(1000), nullable=False),
        sa.Column("RunId", text(64)),
        sa.PrimaryKeyConstraint("ErrorId", name="PK_IngestionErrors"),
        schema=dm(),
    )
    op.create_table(
        "IngestionFiles",
        sa.Column("DropId", text(200)),
        sa.Column("FileName", text(260)),
        sa.Column("DistrictId", sa.Integer),
        sa.Column("Sha256", text(64), nullable=False),
        sa.Column("SizeBytes", sa.BigInteger, nullable=False),
        sa.Column("DropVersion", text(32)),
        sa.Column("ReceivedAt", timestamp(), nullable=False),
        sa.Column("Outcome", text(32), nullable=False),
        sa.PrimaryKeyConstraint("DropId", "FileName", name="PK_IngestionFiles"),
        schema=dm(),
    )
