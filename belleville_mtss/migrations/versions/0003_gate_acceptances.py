"""Gate acceptances: a person's acceptance of a failed gate for one drop version (who, why, the figure accepted).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "GateAcceptances",
        sa.Column("AcceptanceId", sa.Integer, sa.Identity()),
        sa.Column("DropId", sa.String(200), nullable=False),
        sa.Column("DropVersion", sa.String(32), nullable=False),
        sa.Column("Gate", sa.String(64), nullable=False),
        sa.Column("Figure", sa.String(500), nullable=False),
        sa.Column("Reason", sa.String(1000), nullable=False),
        sa.Column("AcceptedBy", sa.String(200), nullable=False),
        sa.Column("AcceptedAt", sa.DateTime, nullable=False),
        sa.Column("RunId", sa.String(64)),
        sa.PrimaryKeyConstraint("AcceptanceId", name="PK_GateAcceptances"),
        schema=dm(),
    )
    op.create_index("IX_GateAcceptances_Drop", "GateAcceptances", ["DropId", "DropVersion", "Gate"], schema=dm())
