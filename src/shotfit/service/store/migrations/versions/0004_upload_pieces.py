"""Uploads continued by any server on a files' store: each PATCH's piece in the store, its row here, and the
claim on an upload's completion; one unfinished upload per name of a shot.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 18:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('completing', sa.DateTime(timezone=True), nullable=True))
    op.create_table('upload_pieces',
    sa.Column('upload_id', sa.String(length=40), nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('stop', sa.BigInteger(), nullable=False),
    sa.Column('tag', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'start')
    )
    op.create_index('uploads_one_receiving', 'uploads', ['shot_id', 'role', 'name'], unique=True,
                    sqlite_where=sa.text('NOT complete'), postgresql_where=sa.text('NOT complete'))


def downgrade() -> None:
    op.drop_index('uploads_one_receiving', table_name='uploads')
    op.drop_table('upload_pieces')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('completing')
