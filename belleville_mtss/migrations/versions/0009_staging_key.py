"""Staging that stays cheap, and lock escalation on the targets left to SQL Server (docs/deploy.md says why).

- SQL Server: each staging table gets a clustered index on LoadId. A LoadId starts with the time the load began
  (lib/load/warehouse.py `new_load_id`), so each load appends at the end of the key, reads and deletes only its own
  range, and a DELETE never scans the pages an earlier load emptied (a heap keeps them under snapshot isolation).
  PostgreSQL keeps its staging tables without an index: a load's apply reads its rows in one scan either way, and
  an index would cost every staged row (docs/performance.md has the figures).
- SQL Server: `dm.StudentRoster` and `dm.AssessmentResults` go back to `LOCK_ESCALATION = TABLE` (the server's
  default): one apply of a state-sized district would otherwise hold tens of millions of key locks, whose memory is
  the whole instance's; the staging tables keep `DISABLE`, their statements bounded in rows instead.
- Every dialect: staged rows written before this revision are deleted. They belong to loads that ended or died (a
  run refuses a warehouse that is not at this release's revision, so none is loading while this is applied), and
  their LoadIds, random, say nothing of their age.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm

revision = "0009"
down_revision = "0008"

STAGING = ("StudentRosterStaging", "AssessmentResultsStaging")


def upgrade() -> None:
    schema = dm()
    for table in STAGING:
        op.execute(sa.table(table, schema=schema).delete())
    if op.get_context().dialect.name != "mssql":
        return
    for table in STAGING:
        op.create_index(f"CX_{table}_LoadId", table, ["LoadId"], schema=schema, mssql_clustered=True)
    op.execute("ALTER TABLE dm.StudentRoster SET (LOCK_ESCALATION = TABLE)")
    op.execute("ALTER TABLE dm.AssessmentResults SET (LOCK_ESCALATION = TABLE)")
