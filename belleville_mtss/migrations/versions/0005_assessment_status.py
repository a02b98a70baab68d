"""Assessment status: Active or Deactivated (a test a teacher invalidated, its scores empty), and why.

Rows loaded before this revision keep NULL: their status was not read. Replaying their drop fills it.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import text

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("AssessmentResults", sa.Column("AssessmentStatus", text(12)), schema=dm())
    op.add_column("AssessmentResults", sa.Column("DeactivationReason", text(200)), schema=dm())
