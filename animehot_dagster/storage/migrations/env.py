"""Alembic environment: runs on the connection that :mod:`animehot_dagster.storage.migrate` passes in."""

from alembic import context

from animehot_dagster.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
