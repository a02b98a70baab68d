"""Baseline: our four tables as the first releases created them (StudentRoster, AssessmentResults, IngestionErrors,
IngestionFiles). A warehouse whose tables an earlier release made is stamped at this revision, then upgraded.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "StudentRoster",
        sa.Column("AccountInfoId", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("StudentNumber", sa.String(20), primary_key=True),
        sa.Column("FirstName", sa.String(100)),
        sa.Column("LastName", sa.String(100)),
        sa.Column("Email", sa.String(320)),
        sa.Column("GradeLevel", sa.String(8)),
        sa.Column("SchoolId", sa.String(20)),
        sa.Column("ClassLinkUserId", sa.String(64)),
        sa.Column("StarTestCount", sa.Integer, nullable=False),
        sa.Column("DropId", sa.String(200), nullable=False),
        sa.Column("LoadedAt", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("AccountInfoId", "StudentNumber", name="PK_StudentRoster"),
        schema=dm(),
    )
    op.create_table(
        "AssessmentResults",
        sa.Column("AccountInfoId", sa.Integer, autoincrement=False),
        sa.Column("Subject", sa.String(3)),
        sa.Column("TestKey", sa.String(120)),
        sa.Column("StudentNumber", sa.String(20), nullable=False),
        sa.Column("SchoolYear", sa.String(9), nullable=False),
        sa.Column("CompletedAt", sa.DateTime, nullable=False),
        sa.Column("Grade", sa.String(12)),
        sa.Column("ScaledScore", sa.Integer),
        sa.Column("PercentileRank", sa.Integer),
        sa.Column("UnifiedScore", sa.Integer),
        sa.Column("BenchmarkCategory", sa.String(100)),
        sa.Column("ScreeningWindow", sa.String(200)),
        sa.Column("DropId", sa.String(200), nullable=False),
        sa.Column("LoadedAt", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("AccountInfoId", "Subject", "TestKey", name="PK_AssessmentResults"),
        schema=dm(),
    )
    op.create_table(
        "IngestionErrors",
        sa.Column("ErrorId", sa.Integer, autoincrement=True),
        sa.Column("OccurredAt", sa.DateTime, nullable=False),
        sa.Column("DistrictId", sa.Integer),
        sa.Column("DropId", sa.String(200)),
        sa.Column("FileName", sa.String(260)),
        sa.Column("Stage", sa.String(32), nullable=False),
        sa.Column("Reason", sa.String(64), nullable=False),
        sa.Column("RowCount", sa.Integer),
        sa.Column("Message", sa.String(1000), nullable=False),
        sa.Column("RunId", sa.String(64)),
        sa.PrimaryKeyConstraint("ErrorId", name="PK_IngestionErrors"),
        schema=dm(),
    )
    op.create_table(
        "IngestionFiles",
        sa.Column("DropId", sa.String(200)),
        sa.Column("FileName", sa.String(260)),
        sa.Column("DistrictId", sa.Integer),
        sa.Column("Sha256", sa.String(64), nullable=False),
        sa.Column("SizeBytes", sa.BigInteger, nullable=False),
        sa.Column("DropVersion", sa.String(32)),
        sa.Column("ReceivedAt", sa.DateTime, nullable=False),
        sa.Column("Outcome", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("DropId", "FileName", name="PK_IngestionFiles"),
        schema=dm(),
    )
