"""One ClassLink user per student, whoever decides at the same time.

A filtered unique index allows one accepted `no_classlink_account` suggestion per district and ClassLink user. The
check that refuses an accept giving another student's user (lib/students/review.py) is a read in the deciding
transaction: two people accepting one user for two students at once both passed it, and at the next drop the two
students shared the join key and neither linked. Where two are accepted for one user already, the first accepted
keeps it and the others become `conflict`, as revision 0010 did for two counterparts of one identifier: not applied
until a person decides again (`belleville-mtss links review DISTRICT --all`).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

from belleville_mtss.lib.load.migrations import dm
from belleville_mtss.lib.load.types import key, text

revision = "0012"
down_revision = "0011"
NO_CLASSLINK = "no_classlink_account"  # lib/students/suggest.py's cause, as stored


def upgrade() -> None:
    schema = dm()
    s = sa.table("LinkSuggestions", sa.column("SuggestionId", sa.Integer), sa.column("AccountInfoId", sa.Integer),
                 sa.column("Cause", text(32)), sa.column("ToId", key(64)), sa.column("Status", text(8)),
                 schema=schema)
    earlier = s.alias("earlier")
    op.execute(s.update().where(s.c.Status == "accepted", s.c.Cause == NO_CLASSLINK, sa.exists().where(
        earlier.c.AccountInfoId == s.c.AccountInfoId, earlier.c.Cause == s.c.Cause, earlier.c.ToId == s.c.ToId,
        earlier.c.Status == "accepted", earlier.c.SuggestionId < s.c.SuggestionId)).values(Status="conflict"))
    where = sa.text("\"Status\" = 'accepted' AND \"Cause\" = 'no_classlink_account'") \
        if op.get_context().dialect.name != "mssql" else \
        sa.text("[Status] = N'accepted' AND [Cause] = N'no_classlink_account'")
    op.create_index("UQ_LinkSuggestions_UserAccepted", "LinkSuggestions", ["AccountInfoId", "ToId"], unique=True,
                    schema=schema, postgresql_where=where, sqlite_where=where, mssql_where=where)

