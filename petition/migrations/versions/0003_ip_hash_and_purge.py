"""Signatures keep a keyed hash of the sender's address, and when they were purged.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip_hash', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('purged_at', sa.DateTime(), nullable=True))



def downgrade():
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
        batch_op.drop_column('ip_hash')

