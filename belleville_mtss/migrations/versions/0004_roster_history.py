"""Roster history: a student the district's newest drop no longer lists stays in dm.StudentRoster, not current.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # Every row there now is the current roster (it was replaced whole): true for all.
    op.add_column("StudentRoster", sa.Column("IsCurrent", sa.Boolean, nullable=False, server_default=sa.true()),
                  schema=dm())
    op.create_index("IX_StudentRoster_Current", "StudentRoster", ["AccountInfoId", "IsCurrent"], schema=dm())
