"""Privacy: who recorded each consent, known consent channels, quiet hours, erasable results.

Revision ID: 0003
Revises: 0001 (re-chained to 0002 when the analytics branch is merged)
Create Date: 2026-11-23

* ``consents.recorded_by``: 个人信息保护法 asks us to show who agreed to what,
  when and how; rows from before this revision are marked "unknown" rather
  than guessed. ``consents.channel`` is now one of all / wechat / web / sms /
  email / app, so a typo cannot create a consent nobody ever reads. The
  upgrade stops, naming them, if older rows hold other channels.
* ``contact_preferences``: per-customer quiet hours (no row = the default).
* ``processed_operations.customer_id``: stored results of writes hold
  personal data (names, complaint text); erasing a customer finds and
  scrubs them through this column. Older rows stay NULL (not backfilled).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CONSENT_CHANNELS = ("all", "wechat", "web", "sms", "email", "app")  # frozen copy of models.CONSENT_CHANNELS
_LISTED = ", ".join(f"'{c}'" for c in CONSENT_CHANNELS)


def upgrade() -> None:
    unknown = op.get_bind().execute(
        sa.text(f"SELECT DISTINCT channel FROM consents WHERE channel NOT IN ({_LISTED})")
    ).scalars().all()
    if unknown:
        raise RuntimeError(
            "consents hold channels this revision does not know: "
            f"{', '.join(sorted(unknown))}; map them to one of {', '.join(CONSENT_CHANNELS)} first"
        )
    with op.batch_alter_table("consents") as batch_op:
        batch_op.add_column(
            sa.Column("recorded_by", sa.String(length=64), nullable=False, server_default="unknown")
        )
        batch_op.create_check_constraint(op.f("ck_consents_channel"), f"channel IN ({_LISTED})")
    # The default only filled the existing rows; new rows must say who recorded them.
    with op.batch_alter_table("consents") as batch_op:
        batch_op.alter_column("recorded_by", existing_type=sa.String(length=64), server_default=None)

    op.create_table(
        "contact_preferences",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=False),
        sa.Column("quiet_end", sa.Time(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_contact_preferences_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_contact_preferences")),
    )

    with op.batch_alter_table("processed_operations") as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch_op.create_index(op.f("ix_processed_operations_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_operations") as batch_op:
        batch_op.drop_index(op.f("ix_processed_operations_customer_id"))
        batch_op.drop_column("customer_id")
    op.drop_table("contact_preferences")
    with op.batch_alter_table("consents") as batch_op:
        batch_op.drop_constraint(op.f("ck_consents_channel"), type_="check")
        batch_op.drop_column("recorded_by")
