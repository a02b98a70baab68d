"""Alembic environment for our own tables in the EDU Data Warehouse (dm schema). Called by lib/load/migrations.py:
online with a connection in `config.attributes["connection"]`, offline (`--sql`) with a dialect name."""
from alembic import context

from belleville_mtss.lib.load.migrations import VERSION_TABLE, version_schema
from belleville_mtss.lib.load.warehouse import ours

config = context.config


def run() -> None:
    if context.is_offline_mode():
        dialect = config.attributes["dialect"]
        # PostgreSQL: the whole script is one transaction, so a failed statement aborts it and the final COMMIT
        # rolls back, whatever the client. SQL Server: a transaction per revision (0006 rewrites whole tables, and
        # the log should not hold them all at once); lib/load/migrations.py guards each batch.
        context.configure(dialect_name=dialect, literal_binds=True, target_metadata=ours, version_table=VERSION_TABLE,
                          version_table_schema=version_schema(dialect), transaction_per_migration=dialect == "mssql")
    else:
        connection = config.attributes["connection"]
        context.configure(connection=connection, target_metadata=ours, version_table=VERSION_TABLE,
                          version_table_schema=version_schema(connection.dialect.name))
    if context.get_context().dialect.name == "mssql":
        # First: any error ends the batch and rolls the transaction back, so no half-applied revision is recorded
        # (run the script with `sqlcmd -b`, which stops at the first error).
        context.execute("SET XACT_ABORT ON")
        # a filtered index (0010) is made, and its table written, only with these on; sqlcmd starts with
        # QUOTED_IDENTIFIER off (ODBC drivers, the runtime's included, start with both on)
        context.execute("SET QUOTED_IDENTIFIER ON")
        context.execute("SET ANSI_NULLS ON")
    with context.begin_transaction():
        context.run_migrations()


run()
