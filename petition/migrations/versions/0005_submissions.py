"""Submissions: every sign-form POST is a row of its own, confirmed as itself; signatures are confirmed ones.

Unconfirmed signatures (pending, and held ones, which were never mailed) become submissions with the same
id and nonce, so the confirmation links already sent keep working; held ones are now mailed too. Outbox
rows of those links follow them; sent messages and repeat notices are dropped. The e-mail cap is counted on
submissions now, so ``signature.mails_sent`` goes. Going down keeps confirmed and held signatures and loses
unconfirmed submissions.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('submission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('petition_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('email_canonical', sa.String(length=320), nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('postcode', sa.String(length=40), nullable=False),
    sa.Column('comment', sa.String(length=500), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('updates', sa.Boolean(), nullable=False),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('ip_hash', sa.String(length=32), nullable=True),
    sa.Column('nonce', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('mailed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['petition_id'], ['petition.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.create_index('ix_submission_undecided', ['decided_at', 'id'], unique=False)
        batch_op.create_index('ix_submission_signer', ['petition_id', 'email_canonical'], unique=False)
        batch_op.create_index('ix_submission_mailbox', ['petition_id', 'mailbox', 'mailed_at'], unique=False)

    # Unconfirmed signatures become submissions: pending ones were mailed already, held ones are mailed now.
    op.execute(
        "INSERT INTO submission (id, petition_id, name, email, email_canonical, mailbox, country, postcode,"
        " comment, public, updates, held, ip_hash, nonce, created_at, decided_at, mailed_at)"
        " SELECT id, petition_id, name, email, email_canonical, email_canonical, country, postcode, comment,"
        " public, updates, status = 'held', ip_hash, nonce, created_at,"
        " CASE WHEN status = 'pending' THEN created_at END, CASE WHEN status = 'pending' THEN created_at END"
        " FROM signature WHERE status IN ('pending', 'held')")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('submission', 'id'),"
                   " COALESCE((SELECT max(id) FROM submission), 0) + 1, false)")

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submission_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('failed_at', sa.DateTime(), nullable=True))
    # Unsent confirmation links of unconfirmed signatures follow them; nothing else is worth keeping.
    op.execute("UPDATE outbox SET submission_id = signature_id WHERE kind = 'confirm' AND sent_at IS NULL"
               " AND signature_id IN (SELECT id FROM submission)")
    op.execute("DELETE FROM outbox WHERE submission_id IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('signature_id', existing_type=sa.Integer(), nullable=True)
    op.execute("UPDATE outbox SET signature_id = NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['sent_at', 'failed_at', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_submission_id'), ['submission_id'], unique=False)
        batch_op.create_foreign_key('fk_outbox_submission_id', 'submission', ['submission_id'], ['id'],
                                    ondelete='CASCADE')

    op.execute("DELETE FROM signature WHERE status <> 'confirmed'")  # now submissions
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.drop_column('mails_sent')


def downgrade():
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mails_sent', sa.Integer(), nullable=False, server_default='1'))
    op.execute("DELETE FROM outbox WHERE signature_id IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint('fk_outbox_submission_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_outbox_submission_id'))
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['sent_at', 'next_attempt_at'], unique=False)
        batch_op.alter_column('signature_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('failed_at')
        batch_op.drop_column('submission_id')
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_index('ix_submission_mailbox')
        batch_op.drop_index('ix_submission_signer')
        batch_op.drop_index('ix_submission_undecided')
    op.drop_table('submission')
