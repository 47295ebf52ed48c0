"""Routes stored through AdminService, and in the usage ledger the route a call named and the
upstream attempts it took (issue 12).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("route", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("attempts")
        batch.drop_column("route")
    op.drop_table("routes")
