"""Alembic's environment for the store: always run on the connection :meth:`Store.migrate` passes in."""

from __future__ import annotations

from alembic import context

from shotfit.service.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
