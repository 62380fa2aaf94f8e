"""Opaque link tokens, organiser sessions that end, the care-work audit, and erasures that reach the files.

A link's token becomes the row's random nonce itself (unique, up to 32 characters); links already sent, which
carry the row's id and nonce signed with the secret key, keep working until they expire. Purged signatures
get distinct nonces first. Each organiser gets a session key: changing it ends every session.

Revision ID: 0006
Revises: 0005
"""
import secrets

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


PERSONAL = {
    'submission': ('name', 'email', 'email_canonical', 'mailbox', 'postcode', 'comment', 'ip_hash'),
    'signature': ('name', 'email', 'email_canonical', 'postcode', 'comment', 'ip_hash'),
}


def upgrade():
    op.execute("UPDATE signature SET nonce = 'purged-' || CAST(id AS VARCHAR) WHERE purged_at IS NOT NULL")
    for table in ('submission', 'signature'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('nonce', existing_type=sa.String(length=16), type_=sa.String(length=32),
                                  existing_nullable=False)
            batch_op.create_unique_constraint(f'uq_{table}_nonce', ['nonce'])

    with op.batch_alter_table('organiser', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_key', sa.String(length=32), nullable=True))
    organiser = sa.table('organiser', sa.column('id', sa.Integer), sa.column('session_key', sa.String))
    bind = op.get_bind()
    for (organiser_id,) in bind.execute(sa.select(organiser.c.id)).all():
        bind.execute(organiser.update().where(organiser.c.id == organiser_id)
                     .values(session_key=secrets.token_hex(16)))
    with op.batch_alter_table('organiser', schema=None) as batch_op:
        batch_op.alter_column('session_key', existing_type=sa.String(length=32), nullable=False)

    op.create_table('audit_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('petition_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['petition_id'], ['petition.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.create_index('ix_audit_record_petition_id', ['petition_id'], unique=False)
        batch_op.create_index('ix_audit_record_created_at', ['created_at'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # ANALYZE would copy sample values of these columns, addresses among them, into pg_statistic, where no
        # erasure reaches them; the planner needs none of them.
        for table, columns in PERSONAL.items():
            for column in columns:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0")

    op.create_table('compaction_due',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade():
    op.drop_table('compaction_due')
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in PERSONAL.items():
            for column in columns:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS -1")
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_record_created_at')
        batch_op.drop_index('ix_audit_record_petition_id')
    op.drop_table('audit_record')
    with op.batch_alter_table('organiser', schema=None) as batch_op:
        batch_op.drop_column('session_key')
    for table in ('signature', 'submission'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'uq_{table}_nonce', type_='unique')
    # Tokens made since the upgrade are longer than the old column: those links stop working.
    op.execute("DELETE FROM submission WHERE length(nonce) > 16")
    op.execute("UPDATE signature SET nonce = substr(nonce, 1, 16)")
    for table in ('submission', 'signature'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('nonce', existing_type=sa.String(length=32), type_=sa.String(length=16),
                                  existing_nullable=False)
