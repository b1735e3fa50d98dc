"""Proactive care: the send log, campaign state, channel preferences, the
conversations the scheduler may push into, the scheduler's leader lease and
APScheduler's job table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

New tables only; nothing existing changes. Frozen on purpose (no import of
crm_adapter.models).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_STATUSES = ("queued", "sending", "sent", "delivered", "deferred", "failed", "dead", "skipped")
_CHANNELS = ("wechat", "web", "sms", "email", "app")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        'care_sends',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign', sa.String(length=48), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('occasion', sa.String(length=64), nullable=False),
        sa.Column('variant', sa.String(length=1), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=True),
        sa.Column('context', sa.JSON(), nullable=False),
        sa.Column('text', sa.Text(), nullable=True),
        sa.Column('coupon_code', sa.String(length=32), nullable=True),
        sa.Column('conversation_id', sa.String(length=128), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('claim_token', sa.String(length=32), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.Column('replied_at', sa.DateTime(), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.CheckConstraint(_in("status", _STATUSES), name=op.f('ck_care_sends_status')),
        sa.CheckConstraint(_in("variant", ("A", "B")), name=op.f('ck_care_sends_variant')),
        sa.CheckConstraint(_in("purpose", ("service", "marketing")), name=op.f('ck_care_sends_purpose')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_care_sends_customer_id_customers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_care_sends')),
        sa.UniqueConstraint('campaign', 'customer_id', 'occasion', name=op.f('uq_care_sends_campaign')),
    )
    op.create_index('ix_care_sends_status_next', 'care_sends', ['status', 'next_attempt_at'])
    op.create_index('ix_care_sends_customer_created', 'care_sends', ['customer_id', 'created_at'])
    op.create_table(
        'care_campaign_states',
        sa.Column('campaign', sa.String(length=48), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('last_run_at', sa.DateTime(), nullable=True),
        sa.Column('last_run_day', sa.Date(), nullable=True),
        sa.Column('last_selected', sa.Integer(), nullable=True),
        sa.Column('last_summary', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('campaign', name=op.f('pk_care_campaign_states')),
    )
    op.create_table(
        'care_channel_preferences',
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint(_in("channel", _CHANNELS), name=op.f('ck_care_channel_preferences_channel')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_care_channel_preferences_customer_id_customers')),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_care_channel_preferences')),
    )
    op.create_table(
        'care_conversations',
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('conversation_id', sa.String(length=128), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_care_conversations_customer_id_customers')),
        sa.PrimaryKeyConstraint('customer_id', 'channel', name=op.f('pk_care_conversations')),
    )
    op.create_table(
        'scheduler_leases',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('acquired_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_leases')),
    )
    op.create_table(
        'care_jobs',
        sa.Column('id', sa.Unicode(length=191), nullable=False),
        sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
        sa.Column('job_state', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_care_jobs')),
    )
    op.create_index('ix_care_jobs_next_run_time', 'care_jobs', ['next_run_time'])


def downgrade() -> None:
    op.drop_index('ix_care_jobs_next_run_time', table_name='care_jobs')
    op.drop_table('care_jobs')
    op.drop_table('scheduler_leases')
    op.drop_table('care_conversations')
    op.drop_table('care_channel_preferences')
    op.drop_table('care_campaign_states')
    op.drop_index('ix_care_sends_customer_created', table_name='care_sends')
    op.drop_index('ix_care_sends_status_next', table_name='care_sends')
    op.drop_table('care_sends')
