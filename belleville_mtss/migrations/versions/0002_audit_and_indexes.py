"""An audit that keeps history, and indexes for the access paths.

dm.IngestionFiles becomes append-only: one row per file per receipt (FileId), its outcome moving from received to
loaded, halted, blocked or duplicate, with the time of each step. The old rows are kept (copied into the new
shape). Indexes: results by student and by drop, the roster by drop, files by checksum and by drop, errors by drop
and by district and time.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import text, timestamp

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.rename_table("IngestionFiles", "IngestionFilesV1", schema=dm())
    new = op.create_table(
        "IngestionFiles",
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
        sa.Column("DuplicateOf", text(200)),
        sa.PrimaryKeyConstraint("FileId", name="PK_IngestionFiles_FileId"),
        schema=dm(),
    )
    old = sa.table("IngestionFilesV1", *[sa.column(c) for c in (
        "DropId", "DropVersion", "FileName", "DistrictId", "Sha256", "SizeBytes", "ReceivedAt", "Outcome")],
        schema=dm())
    copied = ["DropId", "DropVersion", "FileName", "DistrictId", "Sha256", "SizeBytes", "ReceivedAt", "Outcome"]
    op.execute(new.insert().from_select(
        [*copied, "OutcomeAt"], sa.select(*[old.c[c] for c in copied], old.c.ReceivedAt)))
    op.drop_table("IngestionFilesV1", schema=dm())
    op.create_index("IX_IngestionFiles_Sha256", "IngestionFiles", ["DistrictId", "Sha256"], schema=dm())
    op.create_index("IX_IngestionFiles_Drop", "IngestionFiles", ["DropId", "DropVersion"], schema=dm())
    op.create_index("IX_AssessmentResults_Student", "AssessmentResults", ["AccountInfoId", "StudentNumber"],
                    schema=dm())
    op.create_index("IX_AssessmentResults_Drop", "AssessmentResults", ["DropId"], schema=dm())
    op.create_index("IX_StudentRoster_Drop", "StudentRoster", ["DropId"], schema=dm())
    op.create_index("IX_IngestionErrors_Drop", "IngestionErrors", ["DropId"], schema=dm())
    op.create_index("IX_IngestionErrors_District", "IngestionErrors", ["DistrictId", "OccurredAt"], schema=dm())
