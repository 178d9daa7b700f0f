"""imports of files from URLs into project buckets

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from balsam.db.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_imports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("connection", sa.String(length=40), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.Column("expires_in_days", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("version_id", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("process", sa.String(length=200), nullable=True),
        sa.Column("upload_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_data_imports_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_imports")),
    )
    op.create_index("ix_data_imports_project_created", "data_imports", ["project_id", "created_at"])
    op.create_index("ix_data_imports_state", "data_imports", ["state"])


def downgrade() -> None:
    op.drop_index("ix_data_imports_state", table_name="data_imports")
    op.drop_index("ix_data_imports_project_created", table_name="data_imports")
    op.drop_table("data_imports")
