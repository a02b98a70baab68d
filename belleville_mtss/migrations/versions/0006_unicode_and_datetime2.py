"""SQL Server only: text columns become NVARCHAR, key columns NVARCHAR with a binary collation, timestamps DATETIME2
(lib/load/types.py says why). PostgreSQL and SQLite already store what these types mean: nothing changes there.

SQL Server refuses to alter a column an index or a primary key uses, so those are dropped first and re-created
after, inside this revision's transaction (the script starts with SET XACT_ABORT ON: any error rolls it all back).
They are found in the catalog by what they are (`drop_found`), never by the names we would have given them: tables an
earlier release created carry primary keys SQL Server named. docs/deploy.md has the plan for a populated warehouse.
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
# our indexes on each table as at revision 0005 (every one: re-creating the clustered key would rebuild them all)
INDEXES = {
    "StudentRoster": [("IX_StudentRoster_Drop", ["DropId"]), ("IX_StudentRoster_Current", ["AccountInfoId", "IsCurrent"])],
    "AssessmentResults": [("IX_AssessmentResults_Student", ["AccountInfoId", "StudentNumber"]),
                          ("IX_AssessmentResults_Drop", ["DropId"])],
    "IngestionErrors": [("IX_IngestionErrors_District", ["DistrictId", "OccurredAt"]),
                        ("IX_IngestionErrors_Drop", ["DropId"])],
    "IngestionFiles": [("IX_IngestionFiles_Drop", ["DropId", "DropVersion"]),
                       ("IX_IngestionFiles_Sha256", ["DistrictId", "Sha256"])],
    "GateAcceptances": [("IX_GateAcceptances_Drop", ["DropId", "DropVersion", "Gate"])],
}
# the primary keys that use an altered column, re-created under these names
PRIMARY_KEYS = {
    "StudentRoster": ("PK_StudentRoster", ["AccountInfoId", "StudentNumber"]),
    "AssessmentResults": ("PK_AssessmentResults", ["AccountInfoId", "Subject", "TestKey"]),
}


def _n(value: str) -> str:
    return "N'" + value.replace("'", "''") + "'"


def drop_found(table: str) -> str:
    """T-SQL that drops what stands on the table's altered columns, found by what it is, not by a name we would
    have given it: a table an earlier release's `create_all` made has a primary key named by SQL Server
    (`PK__StudentR__...`). Dropped: the primary key (if it uses an altered column), every index whose key columns
    are one of ours (nonclustered first, so that dropping the clustered key rebuilds nothing), and statistics SQL
    Server created by itself on an altered column. Anything else on an altered column (an index or statistics the
    warehouse team added) stops the script naming it: they are theirs to drop and re-create around this revision."""
    altered = ", ".join(_n(c) for c, _, _ in COLUMNS[table])
    ours = ", ".join(_n(",".join(cols)) for _, cols in INDEXES.get(table, []))
    pk = "i.is_primary_key = 1" if table in PRIMARY_KEYS else "1 = 0"
    obj = _n(f"dm.{table}")
    # NOCOUNT on: the INSERT's row count would be the batch's first result, and a driver reading no more results
    # than that would never see the THROW's own message; set off again at the end
    return f"""SET NOCOUNT ON;
DECLARE @t INT = OBJECT_ID({obj});
DECLARE @found TABLE (name SYSNAME, is_pk BIT, ours BIT, uses_altered BIT);
INSERT INTO @found
SELECT i.name, i.is_primary_key,
       CASE WHEN {pk} OR keys.list IN ({ours or "N''"}) THEN 1 ELSE 0 END,
       CASE WHEN EXISTS (SELECT 1 FROM sys.index_columns ic JOIN sys.columns c
                         ON c.object_id = ic.object_id AND c.column_id = ic.column_id
                         WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id
                           AND c.name IN ({altered})) THEN 1 ELSE 0 END
FROM sys.indexes i
CROSS APPLY (SELECT STRING_AGG(c.name, N',') WITHIN GROUP (ORDER BY ic.key_ordinal) AS list
             FROM sys.index_columns ic JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
             WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.key_ordinal > 0) AS keys
WHERE i.object_id = @t AND i.type > 0 AND i.is_unique_constraint = 0;
DECLARE @theirs NVARCHAR(MAX) = (
    SELECT STRING_AGG(CAST(name AS NVARCHAR(MAX)), N', ') FROM (
        SELECT name FROM @found WHERE ours = 0 AND uses_altered = 1
        UNION ALL
        SELECT s.name FROM sys.stats s
        WHERE s.object_id = @t AND s.user_created = 1 AND EXISTS (
            SELECT 1 FROM sys.stats_columns sc JOIN sys.columns c ON c.object_id = sc.object_id AND c.column_id = sc.column_id
            WHERE sc.object_id = s.object_id AND sc.stats_id = s.stats_id AND c.name IN ({altered}))) AS t);
IF @theirs IS NOT NULL
BEGIN
    DECLARE @why NVARCHAR(2048) = CONCAT(N'migration 0006 stops: dm.{table} has indexes or statistics that are not ours on columns it changes (', @theirs, N'); drop them, apply this script, then re-create them');
    THROW 50006, @why, 1;
END;
DECLARE @drop NVARCHAR(MAX) = (
    SELECT STRING_AGG(CAST(CASE WHEN is_pk = 1 THEN CONCAT(N'ALTER TABLE dm.[{table}] DROP CONSTRAINT ', QUOTENAME(name))
                                ELSE CONCAT(N'DROP INDEX ', QUOTENAME(name), N' ON dm.[{table}]') END AS NVARCHAR(MAX)), N'; ')
           WITHIN GROUP (ORDER BY is_pk)
    FROM @found WHERE ours = 1);
DECLARE @stats NVARCHAR(MAX) = (
    SELECT STRING_AGG(CAST(CONCAT(N'DROP STATISTICS dm.[{table}].', QUOTENAME(s.name)) AS NVARCHAR(MAX)), N'; ')
    FROM sys.stats s
    WHERE s.object_id = @t AND s.auto_created = 1 AND EXISTS (
        SELECT 1 FROM sys.stats_columns sc JOIN sys.columns c ON c.object_id = sc.object_id AND c.column_id = sc.column_id
        WHERE sc.object_id = s.object_id AND sc.stats_id = s.stats_id AND c.name IN ({altered})));
IF @drop IS NOT NULL EXEC sys.sp_executesql @drop;
IF @stats IS NOT NULL EXEC sys.sp_executesql @stats;
SET NOCOUNT OFF"""


def upgrade() -> None:
    if op.get_context().dialect.name != "mssql":
        return
    for table, columns in COLUMNS.items():
        op.execute(drop_found(table))
        for column, type_, nullable in columns:
            op.alter_column(table, column, type_=type_, nullable=nullable, existing_nullable=nullable, schema="dm")
        if table in PRIMARY_KEYS:
            op.create_primary_key(PRIMARY_KEYS[table][0], table, PRIMARY_KEYS[table][1], schema="dm")
        for name, on in INDEXES.get(table, []):
            op.create_index(name, table, on, schema="dm")
