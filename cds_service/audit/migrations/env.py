"""Alembic environment: runs the migrations on the connection (and transaction) the caller opened."""

from alembic import context

from cds_service.audit.migrate import VERSION_TABLE

# cds_service.audit.migrate.upgrade hands over a connection that already holds the migration lock
# inside its transaction; the whole upgrade commits or rolls back with it.
connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
