"""Complaint log: an append-only audit trail per complaint, the handling
columns managers review (assignee, first response, reopen count, outcome),
a Chinese full-text index over descriptions and transcripts, and the staff
right to see customers' personal data unmasked.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

Frozen on purpose (no import of crm_adapter.models).

The search index is one row per complaint in ``complaint_search`` (jieba
tokens joined by spaces) plus what each database searches with: on SQLite an
FTS5 table over that text (external content, kept in step by triggers), on
PostgreSQL a GIN index over ``to_tsvector('simple', tokens)``.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_EVENT_KINDS = ("created", "status", "assigned", "note", "reopened", "message", "csat")
_OUTCOMES = ("resolved", "rejected")
_LIST_INDEXES = (
    ("ix_complaints_created_id", ["created_at", "id"]),
    ("ix_complaints_status_created", ["status", "created_at", "id"]),
    ("ix_complaints_category_created", ["category", "created_at", "id"]),
    ("ix_complaints_severity_created", ["severity", "created_at", "id"]),
    ("ix_complaints_channel_created", ["channel", "created_at", "id"]),
    ("ix_complaints_assigned_created", ["assigned_to", "created_at", "id"]),
    ("ix_complaints_sla_id", ["sla_due_at", "id"]),
    ("ix_complaints_resolved_at", ["resolved_at"]),
)

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE complaint_search_fts USING fts5("
    "tokens, content='complaint_search', content_rowid='complaint_id', tokenize='unicode61')",
    "CREATE TRIGGER complaint_search_ai AFTER INSERT ON complaint_search BEGIN "
    "INSERT INTO complaint_search_fts(rowid, tokens) VALUES (new.complaint_id, new.tokens); END",
    "CREATE TRIGGER complaint_search_ad AFTER DELETE ON complaint_search BEGIN "
    "INSERT INTO complaint_search_fts(complaint_search_fts, rowid, tokens) "
    "VALUES ('delete', old.complaint_id, old.tokens); END",
    "CREATE TRIGGER complaint_search_au AFTER UPDATE ON complaint_search BEGIN "
    "INSERT INTO complaint_search_fts(complaint_search_fts, rowid, tokens) "
    "VALUES ('delete', old.complaint_id, old.tokens); "
    "INSERT INTO complaint_search_fts(rowid, tokens) VALUES (new.complaint_id, new.tokens); END",
]
SQLITE_FTS_DROP = ["DROP TRIGGER IF EXISTS complaint_search_au", "DROP TRIGGER IF EXISTS complaint_search_ad",
                   "DROP TRIGGER IF EXISTS complaint_search_ai", "DROP TABLE IF EXISTS complaint_search_fts"]
PG_GIN = ("CREATE INDEX ix_complaint_search_tsv ON complaint_search "
          "USING gin (to_tsvector('simple', tokens))")


def upgrade() -> None:
    with op.batch_alter_table('complaints') as batch_op:
        batch_op.add_column(sa.Column('assigned_to', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('first_response_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('reopened_count', sa.Integer(), nullable=False, server_default='0'))
    # Only ADD COLUMNs above: SQLite then alters in place.  A CHECK added to an
    # existing table would make Alembic rebuild `complaints` on SQLite, which
    # fails on a populated database (other tables' foreign keys point at it),
    # so the outcome check exists on PostgreSQL only; the code writes only
    # these two values.
    if op.get_bind().dialect.name != 'sqlite':
        op.create_check_constraint(op.f('ck_complaints_outcome'), 'complaints',
                                   "outcome IN ('resolved', 'rejected')")
    for name, columns in _LIST_INDEXES:
        op.create_index(name, 'complaints', columns, unique=False)
    op.create_table(
        'complaint_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('complaint_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('from_status', sa.String(length=16), nullable=True),
        sa.Column('to_status', sa.String(length=16), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in _EVENT_KINDS)})",
                           name=op.f('ck_complaint_events_kind')),
        sa.ForeignKeyConstraint(['complaint_id'], ['complaints.id'],
                                name=op.f('fk_complaint_events_complaint_id_complaints')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint_events')),
    )
    op.create_index('ix_complaint_events_complaint', 'complaint_events', ['complaint_id', 'id'], unique=False)
    op.create_table(
        'complaint_search',
        sa.Column('complaint_id', sa.Integer(), nullable=False),
        sa.Column('tokens', sa.Text(), nullable=False),
        sa.Column('transcript_indexed_at', sa.DateTime(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['complaint_id'], ['complaints.id'],
                                name=op.f('fk_complaint_search_complaint_id_complaints')),
        sa.PrimaryKeyConstraint('complaint_id', name=op.f('pk_complaint_search')),
    )
    with op.batch_alter_table('staff') as batch_op:
        batch_op.add_column(sa.Column('pii_access', sa.Boolean(), nullable=False, server_default='0'))
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute(PG_GIN)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_FTS_DROP:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_complaint_search_tsv")
    with op.batch_alter_table('staff') as batch_op:
        batch_op.drop_column('pii_access')
    op.drop_table('complaint_search')
    op.drop_index('ix_complaint_events_complaint', table_name='complaint_events')
    op.drop_table('complaint_events')
    for name, _ in reversed(_LIST_INDEXES):
        op.drop_index(name, table_name='complaints')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('ck_complaints_outcome'), 'complaints', type_='check')
    with op.batch_alter_table('complaints') as batch_op:
        for name in ('reopened_count', 'outcome', 'updated_at', 'first_response_at', 'assigned_to'):
            batch_op.drop_column(name)
