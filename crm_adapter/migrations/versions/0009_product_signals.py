"""Product signals precomputed by the analytics refresh, for `crm_adapter.recommend`.

* ``product_popularity``: one row per product that existed at the refresh:
  units sold (orders paid/shipped/delivered) since ``window_start`` (the
  refresh's ``as_of`` minus 90 days) and in all time.
* ``product_copurchases``: for every ordered pair of distinct products
  bought in one order, the number of distinct orders holding both (any
  status), stored in both directions so that "partners of the products this
  customer bought" is one primary-key range per product.

Both are rewritten whole by every refresh (they are derived data, hence no
foreign keys: a row never outlives the next refresh).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

Frozen on purpose (no import of crm_adapter.models).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "product_popularity",
        sa.Column("product_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("units_recent", sa.Integer(), nullable=False),
        sa.Column("units_all", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "product_copurchases",
        sa.Column("product_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("other_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("orders", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("product_copurchases")
    op.drop_table("product_popularity")
