"""A training job's newest contact sheet in the storage (its file name), recorded by the worker once the sheet
is there: what the event stream and ``previews/latest.png`` read instead of listing the previews folder.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preview', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('preview')
