"""Studio-wide limits for each key (jobs at once, requests a minute), and the shared request counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 11:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studios', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_concurrent_jobs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('requests_per_minute', sa.Integer(), nullable=True))
    op.create_table('rate_counts',
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('window', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key_id')
    )


def downgrade() -> None:
    op.drop_table('rate_counts')
    with op.batch_alter_table('studios', schema=None) as batch_op:
        batch_op.drop_column('requests_per_minute')
        batch_op.drop_column('max_concurrent_jobs')
