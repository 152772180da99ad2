"""Alembic environment: migrations run programmatically by `Ledger.migrate()` (a connection is passed in)."""

from __future__ import annotations

from alembic import context

from kestrel.storage.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run ledger migrations through kestrel.storage.ledger.Ledger.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
