"""Gate acceptances: a person's acceptance of a failed gate for one drop version (who, why, the figure accepted).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import text, timestamp

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "GateAcceptances",
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
        schema=dm(),
    )
    op.create_index("IX_GateAcceptances_Drop", "GateAcceptances", ["DropId", "DropVersion", "Gate"], schema=dm())
