"""workspace sessions (the workspaces' host's cookie, handed over from the portal)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from balsam.db.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("login_session_hash", sa.String(length=64), nullable=False),
        sa.Column("is_ticket", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["login_session_hash"],
            ["login_sessions.id_hash"],
            name=op.f("fk_workspace_sessions_login_session_hash_login_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_workspace_sessions")),
    )
    op.create_index(
        op.f("ix_workspace_sessions_login_session_hash"),
        "workspace_sessions",
        ["login_session_hash"],
        unique=False,
    )
    op.create_index(op.f("ix_workspace_sessions_expires_at"), "workspace_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_workspace_sessions_expires_at"), table_name="workspace_sessions")
    op.drop_index(op.f("ix_workspace_sessions_login_session_hash"), table_name="workspace_sessions")
    op.drop_table("workspace_sessions")
