"""An index that reads a petition's signatures in the order they came: the signer-list export.

Revision ID: 0004
Revises: 0003
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_signature_list', 'signature', ['petition_id', 'id'])


def downgrade():
    op.drop_index('ix_signature_list', table_name='signature')
