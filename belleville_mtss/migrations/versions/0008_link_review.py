"""Link review: suggested counterparts of unlinked students, and a person's decisions on them (who, why, when).

Both append-only. The suggestions hold student identifiers (never names or birth dates): they live here, beside
the roster, and nowhere else.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import key, text, timestamp

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "LinkSuggestions",
        sa.Column("SuggestionId", sa.Integer, sa.Identity()),
        sa.Column("AccountInfoId", sa.Integer, nullable=False),
        sa.Column("Cause", text(32), nullable=False),
        sa.Column("Subjects", text(20)),
        sa.Column("FromId", key(64), nullable=False),
        sa.Column("ToId", key(64), nullable=False),
        sa.Column("Score", sa.Numeric(5, 4, asdecimal=False), nullable=False),
        sa.Column("Evidence", text(500), nullable=False),
        sa.Column("DropId", text(200), nullable=False),
        sa.Column("CreatedAt", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("SuggestionId", name="PK_LinkSuggestions"),
        sa.UniqueConstraint("AccountInfoId", "Cause", "FromId", "ToId", name="UQ_LinkSuggestions_Pair"),
        schema=dm(),
    )
    op.create_table(
        "LinkDecisions",
        sa.Column("DecisionId", sa.Integer, sa.Identity()),
        sa.Column("SuggestionId", sa.Integer, nullable=False),
        sa.Column("Decision", text(8), nullable=False),
        sa.Column("DecidedBy", text(200), nullable=False),
        sa.Column("Reason", text(1000), nullable=False),
        sa.Column("DecidedAt", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("DecisionId", name="PK_LinkDecisions"),
        schema=dm(),
    )
    op.create_index("IX_LinkDecisions_Suggestion", "LinkDecisions", ["SuggestionId"], schema=dm())


def downgrade() -> None:
    op.drop_table("LinkDecisions", schema=dm())
    op.drop_table("LinkSuggestions", schema=dm())
