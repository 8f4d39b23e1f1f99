"""The chunks of a render shared out on Ray workers: which process renders which frames of which attempt (what
an operator reads to find a chunk's process).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_chunks',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('first_frame', sa.Integer(), nullable=False),
    sa.Column('frames', sa.JSON(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('started', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'attempt', 'first_frame')
    )


def downgrade() -> None:
    op.drop_table('job_chunks')
