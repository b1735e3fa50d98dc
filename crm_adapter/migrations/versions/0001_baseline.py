"""Baseline: the CRM schema as `Base.metadata.create_all` made it before Alembic.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Frozen on purpose: it spells every table out instead of importing
crm_adapter.models, so that later model changes cannot rewrite history.
Databases created by ``create_all`` before migrations existed are stamped at
this revision by crm_adapter.migrate (they already have exactly this schema).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('gender', sa.String(length=8), nullable=True),
    sa.Column('city', sa.String(length=32), nullable=True),
    sa.Column('default_address', sa.String(length=200), nullable=True),
    sa.Column('member_level', sa.String(length=16), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('points_expiring', sa.Integer(), nullable=False),
    sa.Column('points_expire_at', sa.Date(), nullable=True),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=16), nullable=False),
    sa.Column('total_spent', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('timezone', sa.String(length=40), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('anonymised_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("lifecycle_stage IN ('potential', 'acquisition', 'growth', 'loyalty', 'churn')", name=op.f('ck_customers_lifecycle_stage')),
    sa.CheckConstraint("tier IN ('core', 'potential', 'low')", name=op.f('ck_customers_tier')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('phone', name=op.f('uq_customers_phone'))
    )
    op.create_table('number_sequences',
    sa.Column('stem', sa.String(length=20), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('stem', name=op.f('pk_number_sequences'))
    )
    op.create_table('processed_operations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_processed_operations')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_processed_operations_idempotency_key'))
    )
    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('aliases', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('price', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.Column('repurchase_days', sa.Integer(), nullable=True),
    sa.Column('warranty_months', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('sku', name=op.f('uq_products_sku'))
    )
    op.create_index(op.f('ix_products_category'), 'products', ['category'], unique=False)

    op.create_table('verification_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_number', sa.String(length=12), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_attempts'))
    )
    op.create_index('ix_verification_attempts_order', 'verification_attempts', ['order_number', 'created_at'], unique=False)

    op.create_table('channel_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_channel_identities_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_identities')),
    sa.UniqueConstraint('channel', 'external_id', name=op.f('uq_channel_identities_channel'))
    )
    op.create_index(op.f('ix_channel_identities_customer_id'), 'channel_identities', ['customer_id'], unique=False)

    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("purpose IN ('service', 'marketing')", name=op.f('ck_consents_purpose')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_consents_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    op.create_index('ix_consents_lookup', 'consents', ['customer_id', 'channel', 'purpose', 'created_at'], unique=False)

    op.create_table('coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.Column('min_spend', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_coupons_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code'))
    )
    op.create_index(op.f('ix_coupons_customer_id'), 'coupons', ['customer_id'], unique=False)

    op.create_table('csat_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('comment', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('score BETWEEN 1 AND 5', name=op.f('ck_csat_ratings_score')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_csat_ratings_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csat_ratings'))
    )
    op.create_index(op.f('ix_csat_ratings_customer_id'), 'csat_ratings', ['customer_id'], unique=False)

    op.create_table('interactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_interactions_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions'))
    )
    op.create_index('ix_interactions_customer_created', 'interactions', ['customer_id', 'created_at'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_number', sa.String(length=12), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('total', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('paid_at', sa.DateTime(), nullable=True),
    sa.Column('shipped_at', sa.DateTime(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('carrier', sa.String(length=16), nullable=True),
    sa.Column('tracking_number', sa.String(length=32), nullable=True),
    sa.Column('logistics_note', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending_payment', 'paid', 'shipped', 'delivered', 'cancelled', 'returned')", name=op.f('ck_orders_status')),
    sa.CheckConstraint('length(order_number) = 12', name=op.f('ck_orders_order_number_len')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_orders_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('order_number', name=op.f('uq_orders_order_number'))
    )
    op.create_index('ix_orders_customer_created', 'orders', ['customer_id', 'created_at'], unique=False)

    op.create_table('complaints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_number', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('reported_order_number', sa.String(length=12), nullable=True),
    sa.Column('contact_phone', sa.String(length=20), nullable=True),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=False),
    sa.Column('sla_due_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("category IN ('logistics', 'quality', 'service', 'price', 'after_sales', 'other')", name=op.f('ck_complaints_category')),
    sa.CheckConstraint("severity IN ('high', 'medium', 'low')", name=op.f('ck_complaints_severity')),
    sa.CheckConstraint("status IN ('open', 'pending', 'resolved', 'closed')", name=op.f('ck_complaints_status')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_complaints_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_complaints_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaints')),
    sa.UniqueConstraint('ticket_number', name=op.f('uq_complaints_ticket_number'))
    )
    op.create_index('ix_complaints_customer_created', 'complaints', ['customer_id', 'created_at'], unique=False)
    op.create_index('ix_complaints_status_sla', 'complaints', ['status', 'sla_due_at'], unique=False)

    op.create_table('invoice_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_number', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('tax_number', sa.String(length=18), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'issued', 'rejected')", name=op.f('ck_invoice_requests_status')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_invoice_requests_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_invoice_requests_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_requests')),
    sa.UniqueConstraint('request_number', name=op.f('uq_invoice_requests_request_number'))
    )
    op.create_index(op.f('ix_invoice_requests_customer_id'), 'invoice_requests', ['customer_id'], unique=False)
    op.create_index(op.f('ix_invoice_requests_order_id'), 'invoice_requests', ['order_id'], unique=False)

    op.create_table('order_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_items_quantity')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_items_order_id_orders')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_items_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_items'))
    )
    op.create_index(op.f('ix_order_items_order_id'), 'order_items', ['order_id'], unique=False)
    op.create_index(op.f('ix_order_items_product_id'), 'order_items', ['product_id'], unique=False)

    op.create_table('payment_tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_number', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('problem', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("problem IN ('failed', 'double_charged', 'charged_no_order')", name=op.f('ck_payment_tickets_problem')),
    sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f('ck_payment_tickets_status')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_payment_tickets_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payment_tickets_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_tickets')),
    sa.UniqueConstraint('ticket_number', name=op.f('uq_payment_tickets_ticket_number'))
    )
    op.create_index(op.f('ix_payment_tickets_customer_id'), 'payment_tickets', ['customer_id'], unique=False)

    op.create_table('return_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('return_number', sa.String(length=20), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('refund_amount', sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
    sa.Column('refund_eta', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'approved', 'received', 'refunded', 'rejected')", name=op.f('ck_return_requests_status')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_return_requests_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_return_requests_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_return_requests')),
    sa.UniqueConstraint('return_number', name=op.f('uq_return_requests_return_number'))
    )
    op.create_index(op.f('ix_return_requests_customer_id'), 'return_requests', ['customer_id'], unique=False)
    op.create_index(op.f('ix_return_requests_order_id'), 'return_requests', ['order_id'], unique=False)
    op.create_index('uq_return_requests_one_open', 'return_requests', ['order_id'], unique=True, sqlite_where=sa.text("status IN ('requested', 'approved', 'received')"), postgresql_where=sa.text("status IN ('requested', 'approved', 'received')"))

    op.create_table('escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('complaint_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=False),
    sa.Column('assigned_to', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("priority IN ('high', 'normal')", name=op.f('ck_escalations_priority')),
    sa.CheckConstraint("status IN ('pending', 'open', 'resolved')", name=op.f('ck_escalations_status')),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaints.id'], name=op.f('fk_escalations_complaint_id_complaints')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_escalations_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations'))
    )
    op.create_index('ix_escalations_conversation', 'escalations', ['channel', 'sender_id', 'status'], unique=False)
    op.create_index(op.f('ix_escalations_customer_id'), 'escalations', ['customer_id'], unique=False)
    op.create_index('ix_escalations_queue', 'escalations', ['status', 'priority', 'created_at'], unique=False)


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    op.drop_table('escalations')
    op.drop_table('return_requests')
    op.drop_table('payment_tickets')
    op.drop_table('order_items')
    op.drop_table('invoice_requests')
    op.drop_table('complaints')
    op.drop_table('orders')
    op.drop_table('interactions')
    op.drop_table('csat_ratings')
    op.drop_table('coupons')
    op.drop_table('consents')
    op.drop_table('channel_identities')
    op.drop_table('verification_attempts')
    op.drop_table('products')
    op.drop_table('processed_operations')
    op.drop_table('number_sequences')
    op.drop_table('customers')
