"""Analytics: customer_metrics, customer_segment_changes, analytics_runs, nps_responses.

Plus the indexes the incremental refresh and the KPIs use on existing tables.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _money() -> sa.Numeric:
    return sa.Numeric(12, 2, asdecimal=False)


def upgrade() -> None:
    op.create_table(
        "customer_metrics",
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", name="fk_customer_metrics_customer_id_customers"), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("first_order_day", sa.Float()),
        sa.Column("last_order_day", sa.Float()),
        sa.Column("lifetime_spend", _money(), nullable=False),
        sa.Column("median_interval_days", sa.Float()),
        sa.Column("recency_days", sa.Float()),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", _money(), nullable=False),
        sa.Column("window_oldest_day", sa.Float()),
        sa.Column("complaints_recent", sa.Integer(), nullable=False),
        sa.Column("complaints_oldest_day", sa.Float()),
        sa.Column("csat_avg", sa.Float()),
        sa.Column("csat_count", sa.Integer(), nullable=False),
        sa.Column("csat_oldest_day", sa.Float()),
        sa.Column("r_score", sa.Integer()),
        sa.Column("f_score", sa.Integer()),
        sa.Column("m_score", sa.Integer()),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("stage_since", sa.DateTime(), nullable=False),
        sa.Column("clv_simple", _money(), nullable=False),
        sa.Column("clv_discounted", _money(), nullable=False),
        sa.Column("churn_risk", sa.Float()),
        sa.Column("cluster", sa.Integer()),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("next_review_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_metrics"),
        sa.CheckConstraint("tier IN ('core', 'potential', 'low')", name="ck_customer_metrics_tier"),
        sa.CheckConstraint(
            "stage IN ('potential', 'new', 'growth', 'loyal', 'at_risk', 'churned')", name="ck_customer_metrics_stage"
        ),
    )
    op.create_index("ix_customer_metrics_next_review_at", "customer_metrics", ["next_review_at"])
    op.create_index("ix_customer_metrics_tier_stage", "customer_metrics", ["tier", "stage"])

    op.create_table(
        "customer_segment_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", name="fk_customer_segment_changes_customer_id_customers"), nullable=False),
        sa.Column("field", sa.String(8), nullable=False),
        sa.Column("old_value", sa.String(16)),
        sa.Column("new_value", sa.String(16), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customer_segment_changes"),
        sa.CheckConstraint("field IN ('tier', 'stage')", name="ck_customer_segment_changes_field"),
    )
    op.create_index("ix_customer_segment_changes_changed", "customer_segment_changes", ["field", "changed_at"])
    op.create_index("ix_customer_segment_changes_customer", "customer_segment_changes", ["customer_id", "changed_at"])

    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("customers_refreshed", sa.Integer(), nullable=False),
        sa.Column("rows_rescored", sa.Integer(), nullable=False),
        sa.Column("excluded_orders", sa.Integer(), nullable=False),
        sa.Column("population_interval_days", sa.Float(), nullable=False),
        sa.Column("cuts", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_analytics_runs"),
        sa.CheckConstraint("kind IN ('full', 'incremental')", name="ck_analytics_runs_kind"),
    )

    op.create_table(
        "nps_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", name="fk_nps_responses_customer_id_customers")),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(500)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nps_responses"),
        sa.CheckConstraint("score BETWEEN 0 AND 10", name="ck_nps_responses_score"),
    )
    op.create_index("ix_nps_responses_customer_id", "nps_responses", ["customer_id"])
    op.create_index("ix_nps_responses_created_at", "nps_responses", ["created_at"])

    op.create_index("ix_orders_updated_at", "orders", ["updated_at"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.create_index("ix_complaints_created_at", "complaints", ["created_at"])
    op.create_index("ix_csat_ratings_created_at", "csat_ratings", ["created_at"])


def downgrade() -> None:
    for name, table in (
        ("ix_csat_ratings_created_at", "csat_ratings"),
        ("ix_complaints_created_at", "complaints"),
        ("ix_orders_created_at", "orders"),
        ("ix_orders_updated_at", "orders"),
    ):
        op.drop_index(name, table_name=table)
    op.drop_table("nps_responses")
    op.drop_table("analytics_runs")
    op.drop_table("customer_segment_changes")
    op.drop_table("customer_metrics")
