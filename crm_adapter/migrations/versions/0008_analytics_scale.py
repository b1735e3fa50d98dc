"""Indexes for the analytics refresh at a million customers (BENCHMARKS.md, "CRM analytics at scale").

* ``ix_orders_customer_history`` (customer_id, created_at, id, status,
  total) replaces ``ix_orders_customer_created`` (customer_id, created_at),
  of which it is an extension, so every query that used the old one can use
  it: the refresh reads all counted orders in (customer, time, id) order
  from this index alone, without sorting ten million rows or visiting the
  table once per order.
* ``ix_orders_paid_at`` and ``ix_orders_cancelled_at``: with the existing
  created_at and updated_at indexes, the incremental refresh's "orders
  changed since" (an OR over the four columns) is answered from indexes
  instead of a scan of every order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23

Frozen on purpose (no import of crm_adapter.models).
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_orders_customer_history", "orders", ["customer_id", "created_at", "id", "status", "total"])
    op.drop_index("ix_orders_customer_created", table_name="orders")
    op.create_index("ix_orders_paid_at", "orders", ["paid_at"])
    op.create_index("ix_orders_cancelled_at", "orders", ["cancelled_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_cancelled_at", table_name="orders")
    op.drop_index("ix_orders_paid_at", table_name="orders")
    op.create_index("ix_orders_customer_created", "orders", ["customer_id", "created_at"])
    op.drop_index("ix_orders_customer_history", table_name="orders")
