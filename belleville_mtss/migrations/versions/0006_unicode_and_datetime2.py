"""SQL Server only: text columns become NVARCHAR, key columns NVARCHAR with a binary collation, timestamps DATETIME2
(lib/load/types.py says why). PostgreSQL and SQLite already store what these types mean: nothing changes there.

SQL Server refuses to alter a column an index or a primary key uses, so those are dropped first and re-created
after, inside this revision's transaction (the script starts with SET XACT_ABORT ON: any error rolls it all back).
On a warehouse created by this release the columns already have these types and the statements change nothing.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

from belleville_mtss.lib.load.types import key, text, timestamp

revision = "0006"
down_revision = "0005"

# (column, type, nullable) as at revision 0005, with their new types
COLUMNS = {
    "StudentRoster": [("StudentNumber", key(20), False), ("FirstName", text(100), True), ("LastName", text(100), True),
                      ("Email", text(320), True), ("GradeLevel", text(8), True), ("SchoolId", text(20), True),
                      ("ClassLinkUserId", text(64), True), ("DropId", text(200), False),
                      ("LoadedAt", timestamp(), False)],
    "AssessmentResults": [("Subject", key(3), False), ("TestKey", key(120), False), ("StudentNumber", key(20), False),
                          ("SchoolYear", text(9), False), ("CompletedAt", timestamp(), False),
                          ("Grade", text(12), True), ("BenchmarkCategory", text(100), True),
                          ("ScreeningWindow", text(200), True), ("DropId", text(200), False),
                          ("LoadedAt", timestamp(), False), ("AssessmentStatus", text(12), True),
                          ("DeactivationReason", text(200), True)],
    "IngestionErrors": [("OccurredAt", timestamp(), False), ("DropId", text(200), True),
                        ("FileName", text(260), True), ("Stage", text(32), False), ("Reason", text(64), False),
                        ("Message", text(1000), False), ("RunId", text(64), True)],
    "IngestionFiles": [("DropId", text(200), False), ("DropVersion", text(32), True), ("FileName", text(260), False),
                       ("Sha256", text(64), False), ("RunId", text(64), True), ("ReceivedAt", timestamp(), False),
                       ("Outcome", text(32), False), ("OutcomeAt", timestamp(), False),
                       ("DuplicateOf", text(200), True)],
    "GateAcceptances": [("DropId", text(200), False), ("DropVersion", text(32), False), ("Gate", text(64), False),
                        ("Figure", text(500), False), ("Reason", text(1000), False), ("AcceptedBy", text(200), False),
                        ("AcceptedAt", timestamp(), False), ("RunId", text(64), True)],
}
# the indexes and primary keys that use an altered column, as at revision 0005
INDEXES = {
    "StudentRoster": [("IX_StudentRoster_Drop", ["DropId"])],
    "AssessmentResults": [("IX_AssessmentResults_Student", ["AccountInfoId", "StudentNumber"]),
                          ("IX_AssessmentResults_Drop", ["DropId"])],
    "IngestionErrors": [("IX_IngestionErrors_District", ["DistrictId", "OccurredAt"]),
                        ("IX_IngestionErrors_Drop", ["DropId"])],
    "IngestionFiles": [("IX_IngestionFiles_Drop", ["DropId", "DropVersion"]),
                       ("IX_IngestionFiles_Sha256", ["DistrictId", "Sha256"])],
    "GateAcceptances": [("IX_GateAcceptances_Drop", ["DropId", "DropVersion", "Gate"])],
}
PRIMARY_KEYS = {
    "StudentRoster": ("PK_StudentRoster", ["AccountInfoId", "StudentNumber"]),
    "AssessmentResults": ("PK_AssessmentResults", ["AccountInfoId", "Subject", "TestKey"]),
}


def upgrade() -> None:
    if op.get_context().dialect.name != "mssql":
        return
    for table, columns in COLUMNS.items():
        for name, _ in INDEXES.get(table, []):
            op.drop_index(name, table_name=table, schema="dm")
        if table in PRIMARY_KEYS:
            op.drop_constraint(PRIMARY_KEYS[table][0], table, type_="primary", schema="dm")
        for column, type_, nullable in columns:
            op.alter_column(table, column, type_=type_, nullable=nullable, existing_nullable=nullable, schema="dm")
        if table in PRIMARY_KEYS:
            op.create_primary_key(PRIMARY_KEYS[table][0], table, PRIMARY_KEYS[table][1], schema="dm")
        for name, on in INDEXES.get(table, []):
            op.create_index(name, table, on, schema="dm")
