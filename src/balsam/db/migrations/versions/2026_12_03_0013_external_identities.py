"""accounts at the identity provider (OpenID Connect); how a login session began;
memberships made by the provider's group rules

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from balsam.db.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("provider_username", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_external_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_external_identities_issuer")),
    )
    op.create_index(
        op.f("ix_external_identities_user_id"), "external_identities", ["user_id"], unique=False
    )
    op.create_index(
        op.f("ix_external_identities_provider_username"),
        "external_identities",
        ["provider_username"],
        unique=False,
    )
    with op.batch_alter_table("login_sessions") as batch:
        batch.add_column(
            sa.Column("via", sa.String(length=16), server_default="password", nullable=False)
        )
        batch.add_column(sa.Column("provider_sid", sa.String(length=255), nullable=True))
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("via_group", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("via_group")
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_column("provider_sid")
        batch.drop_column("via")
    op.drop_index(
        op.f("ix_external_identities_provider_username"), table_name="external_identities"
    )
    op.drop_index(op.f("ix_external_identities_user_id"), table_name="external_identities")
    op.drop_table("external_identities")
