"""storage quotas per project and resumable uploads

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from balsam.db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("storage_over_quota", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "data_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.Integer(), nullable=False),
        sa.Column("expires_in_days", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_data_uploads_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_uploads")),
    )
    op.create_index("ix_data_uploads_project", "data_uploads", ["project_id"])
    op.create_table(
        "data_upload_parts",
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["data_uploads.id"],
            name=op.f("fk_data_upload_parts_upload_id_data_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "number", name=op.f("pk_data_upload_parts")),
    )


def downgrade() -> None:
    op.drop_table("data_upload_parts")
    op.drop_index("ix_data_uploads_project", table_name="data_uploads")
    op.drop_table("data_uploads")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("storage_over_quota")
        batch.drop_column("storage_quota_bytes")
