"""Desk: staff accounts and sessions, the escalation timeline, canned replies,
and the escalation columns the desk's queue and SLA clocks need.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Frozen on purpose (no import of crm_adapter.models).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_EVENT_KINDS = ("created", "raised", "queue_notice", "claimed", "assigned", "transferred",
                "agent_message", "note", "resolved", "reopened", "csat", "callback")
_NEW_ESCALATION_COLUMNS = (
    ("updated_at", sa.DateTime()), ("claimed_at", sa.DateTime()), ("first_response_at", sa.DateTime()),
    ("first_response_due_at", sa.DateTime()), ("resolve_due_at", sa.DateTime()),
    ("resolved_by", sa.String(length=64)), ("callback_phone", sa.String(length=32)),
    ("last_customer_message_at", sa.DateTime()), ("last_notice_at", sa.DateTime()),
    ("csat_score", sa.Integer()),
)



def upgrade() -> None:
    op.create_table(
        'staff',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('display_name', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('max_open', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('last_seen_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('agent', 'manager', 'admin')", name=op.f('ck_staff_role')),
        sa.CheckConstraint("status IN ('online', 'away', 'offline')", name=op.f('ck_staff_status')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
        sa.UniqueConstraint('username', name=op.f('uq_staff_username')),
    )
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_staff_sessions_staff_id_staff')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_staff_sessions_token_hash')),
    )
    op.create_index(op.f('ix_staff_sessions_staff_id'), 'staff_sessions', ['staff_id'], unique=False)
    op.create_table(
        'escalation_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('escalation_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in _EVENT_KINDS)})",
                           name=op.f('ck_escalation_events_kind')),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'],
                                name=op.f('fk_escalation_events_escalation_id_escalations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_events')),
    )
    op.create_index('ix_escalation_events_escalation', 'escalation_events', ['escalation_id', 'id'], unique=False)
    op.create_table(
        'canned_responses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('title', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_responses')),
        sa.UniqueConstraint('code', name=op.f('uq_canned_responses_code')),
    )
    with op.batch_alter_table('escalations') as batch_op:
        for name, type_ in _NEW_ESCALATION_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.add_column(sa.Column('callback', sa.Boolean(), nullable=False, server_default=sa.text('false')))


def downgrade() -> None:
    with op.batch_alter_table('escalations') as batch_op:
        batch_op.drop_column('callback')
        for name, _ in reversed(_NEW_ESCALATION_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table('canned_responses')
    op.drop_index('ix_escalation_events_escalation', table_name='escalation_events')
    op.drop_table('escalation_events')
    op.drop_index(op.f('ix_staff_sessions_staff_id'), table_name='staff_sessions')
    op.drop_table('staff_sessions')
    op.drop_table('staff')
