"""One decision per suggestion, one accepted counterpart per identifier, whoever decides at the same time.

`dm.LinkSuggestions.Status` (open, accepted, rejected) is set by the decision itself, with a conditional UPDATE that
only an open suggestion passes; a filtered unique index allows one accepted suggestion per district, cause and
identifier. Existing suggestions take the status of their latest decision. Where two were accepted for one
identifier (possible before this revision, when two people decided at once) the first accepted keeps it and the
others become `conflict`: not applied until a person decides again (`belleville-mtss links review DISTRICT --all`).

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import key, text

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    schema = dm()
    op.add_column("LinkSuggestions", sa.Column("Status", text(8), nullable=False, server_default="open"),
                  schema=schema)
    s = sa.table("LinkSuggestions", sa.column("SuggestionId", sa.Integer), sa.column("AccountInfoId", sa.Integer),
                 sa.column("Cause", text(32)), sa.column("FromId", key(64)), sa.column("Status", text(8)),
                 schema=schema)
    d = sa.table("LinkDecisions", sa.column("DecisionId", sa.Integer), sa.column("SuggestionId", sa.Integer),
                 sa.column("Decision", text(8)), schema=schema)
    d2 = d.alias("later")
    latest = (sa.select(d.c.Decision).where(d.c.SuggestionId == s.c.SuggestionId, ~sa.exists().where(
        d2.c.SuggestionId == d.c.SuggestionId, d2.c.DecisionId > d.c.DecisionId)).scalar_subquery())
    op.execute(s.update().where(sa.exists().where(d.c.SuggestionId == s.c.SuggestionId)).values(Status=latest))
    earlier = s.alias("earlier")
    op.execute(s.update().where(s.c.Status == "accepted", sa.exists().where(
        earlier.c.AccountInfoId == s.c.AccountInfoId, earlier.c.Cause == s.c.Cause, earlier.c.FromId == s.c.FromId,
        earlier.c.Status == "accepted", earlier.c.SuggestionId < s.c.SuggestionId)).values(Status="conflict"))
    accepted = sa.text("\"Status\" = 'accepted'") if op.get_context().dialect.name != "mssql" else \
        sa.text("[Status] = N'accepted'")
    op.create_index("UQ_LinkSuggestions_Accepted", "LinkSuggestions", ["AccountInfoId", "Cause", "FromId"],
                    unique=True, schema=schema, postgresql_where=accepted, sqlite_where=accepted,
                    mssql_where=accepted)
