"""SQLAlchemy models: the control plane's whole state.

Nothing here holds a secret in clear text: passwords are argon2id hashes,
API tokens and session ids are SHA-256 digests, and S3 secret keys are never
stored at all (only the storage server keeps them).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A personal API token; only the SHA-256 of the token is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()


class ExternalIdentity(Base):
    """A user's account at the identity provider: (issuer, subject) is who signs in,
    for ever; the user name made from it at first sign-in may change in Balsam."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    #: The provider's user name for it (``preferred_username``), as last seen: the name
    #: the provider asks the groups endpoint with.
    provider_username: Mapped[str | None] = mapped_column(
        String(255), nullable=True, index=True, default=None
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginSession(Base):
    """A browser session; the cookie holds a random value, the row its SHA-256."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The uid of the local process (a browser of another user of this machine) that
    #: logged in, when the socket said; the session is refused to any other.
    local_uid: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    #: How the user signed in: "password", or "oidc" (the identity provider; signing
    #: out of Balsam then signs out there too).
    via: Mapped[str] = mapped_column(String(16), default="password", server_default="password")
    #: The identity provider's session (its ``sid`` claim), for its back-channel logout.
    provider_sid: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)

    user: Mapped[User] = relationship()


class WorkspaceSession(Base):
    """The workspaces' host's session, handed over from a login session: first a
    one-time ticket (``is_ticket``, a minute), then the cookie it was exchanged for.
    Ends with its login session (logout, password change, deactivation)."""

    __tablename__ = "workspace_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    login_session_hash: Mapped[str] = mapped_column(
        ForeignKey("login_sessions.id_hash", ondelete="CASCADE"), index=True
    )
    is_ticket: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LoginFailure(Base):
    """One failed login, for per-account and per-address rate limiting."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: casefolded, whitespace-normalised name: duplicate display names are refused.
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    default_branch: Mapped[str] = mapped_column(String(100))
    bucket: Mapped[str] = mapped_column(String(63), unique=True)
    source_location: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: Bytes the bucket may hold (current objects); None: the installation's default.
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Set by the quota sweep while the bucket is over its quota: the project's keys
    #: then read only, and writes through Balsam are refused.
    storage_over_quota: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    branches: Mapped[list[Branch]] = relationship(
        back_populates="project",
        cascade="all, delete-orphan",
        order_by="Branch.created_at",
        lazy="selectin",
    )
    members: Mapped[list[Membership]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )


class Branch(Base):
    __tablename__ = "branches"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="branches")


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # "owner" | "member"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The identity provider's group whose rule (``oidc.project_roles``) made this
    #: membership; it ends when the user leaves the group. None: added by a person.
    via_group: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)

    project: Mapped[Project] = relationship(back_populates="members")
    user: Mapped[User] = relationship(lazy="joined")


class Credential(Base):
    """A project-scoped S3 key. The secret is never stored here."""

    __tablename__ = "credentials"

    access_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Workspace(Base):
    """A JupyterLab workspace on one project branch. Its secrets (S3 secret key,
    git token, server token) live with the provider, never here: the row keeps
    the S3 access key id and the SHA-256 of the git token."""

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    branch: Mapped[str] = mapped_column(String(100))
    template_id: Mapped[str] = mapped_column(String(63))
    #: ``<template>-<version>``: the environment this workspace runs in.
    environment: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Set when the owner lost access (removed from the project): no start, no proxy.
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    s3_access_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    git_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    #: Exact package versions of the environment (name → version) once built.
    environment_lock: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    #: What the user installed into the home beside the environment (name → version;
    #: R packages as ``R/<name>``), read at its last start or stop.
    user_packages: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    owner: Mapped[User] = relationship(lazy="joined")


class AuditEvent(Base):
    """One append-only audit record, chained to the previous one by hash."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    project_id: Mapped[str | None] = mapped_column(String(63), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # "success" | "failure" | "denied"
    request_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_audit_events_project_id_id", "project_id", "id"),)


class KnowledgeLibrary(Base):
    """A knowledge library: a git repository mirrored under ``<data_dir>/libraries``.

    ``last_synced_commit`` is what readers are served; a failed sync records
    ``sync_error`` and leaves it (the last good commit) in place.
    """

    __tablename__ = "knowledge_libraries"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: casefolded, whitespace-normalised name: duplicate display names are refused.
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    repository_url: Mapped[str] = mapped_column(Text)
    repository_friendly_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    branch: Mapped[str] = mapped_column(String(100))
    sync_status: Mapped[str] = mapped_column(String(16), default="pending")
    last_synced_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sync_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SearchDocument(Base):
    """One indexed file of a knowledge library; every replica builds its
    in-memory search index from these rows (see :mod:`balsam.domain.search`).

    ``content_hash`` is ``<extractor version>:<git blob id>`` (``…:name`` where
    only the name is indexed): a sync re-reads only paths whose hash changed.
    """

    __tablename__ = "search_documents"

    library_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))


class PendingOperation(Base):
    """A multi-step operation under way (the crash journal): written before its first
    side effect, removed when it has finished or been undone. A row left behind by a
    process that died is completed or undone at the next start (``domain/journal.py``).
    No foreign key: the project may not exist yet, or any more."""

    __tablename__ = "pending_operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), default="")
    #: ``host:pid:start-time`` of the process doing it: only a dead owner's rows are repaired.
    process: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataObject(Base):
    """Provenance of one object version written through Balsam's data API: who wrote
    it, when, from where and its SHA-256. No foreign key to the version itself (it
    lives in the bucket); rows go with their project."""

    __tablename__ = "data_objects"
    __table_args__ = (Index("ix_data_objects_project_path", "project_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    #: The S3 version id ("" where the bucket keeps none).
    version_id: Mapped[str] = mapped_column(String(128), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(64))
    #: Where it came from: "upload", "restore of <version>", a URL of an import.
    source: Mapped[str] = mapped_column(Text, default="upload")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Temporary data (under tmp/): when the sweep deletes it.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DataUpload(Base):
    """A resumable upload in progress: the storage server's multipart upload it
    fills. Parts live on the storage server (invisible until completed); this row
    lets any Balsam process, also after a restart, continue, finish or abort it."""

    __tablename__ = "data_uploads"
    __table_args__ = (Index("ix_data_uploads_project", "project_id"),)

    #: Random, URL-safe; not a secret (the caller must be a member as well).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    #: The storage server's multipart upload id.
    upload_id: Mapped[str] = mapped_column(Text)
    #: The size the client announced; parts must add up to it.
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(Integer)
    expires_in_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataUploadPart(Base):
    """A part of a resumable upload as last stored: the storage server may keep every
    copy of a part sent twice (SeaweedFS does), and completing names the one meant by
    its ETag."""

    __tablename__ = "data_upload_parts"

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("data_uploads.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(128))


class DataConnection(Base):
    """A named connection of a project to an outside data source (a PostgreSQL
    database, an S3 bucket, an HTTP API). ``settings`` holds what is not secret
    (host, port, endpoint, URL, ...); the secret (password, secret access key, token)
    is only ever stored sealed (AES-GCM, bound to project, name and kind) with a key
    that is not in the database: :mod:`balsam.domain.data.connections.sealing`."""

    __tablename__ = "data_connections"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_data_connections_project_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    #: Upper-case, usable in an environment variable name (BALSAM_CONN_<NAME>_...).
    name: Mapped[str] = mapped_column(String(40))
    #: "postgresql" | "s3" | "http"
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, str]] = mapped_column(JSON)
    #: ``v1.<key id>.<base64 nonce+ciphertext>``; None: no secret was given.
    secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataImport(Base):
    """An import into a project's bucket of a file from an http(s) URL, or of a query's
    result on a PostgreSQL data connection (as Parquet), run in the background:
    ``queued`` → ``running`` → ``succeeded`` | ``failed``. While it runs, ``process``
    names the process doing it and ``upload_id`` the multipart upload it fills, so one
    its process left behind (a crash) is failed and its upload aborted at the next
    start (``domain/data/import_recovery.py``)."""

    __tablename__ = "data_imports"
    __table_args__ = (
        Index("ix_data_imports_project_created", "project_id", "created_at"),
        Index("ix_data_imports_state", "state"),
    )

    #: Random, URL-safe; not a secret (the caller must be a member as well).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    #: The http(s) URL fetched; None for a query on a data connection.
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: A PostgreSQL data connection's name and the query run on it (its result is
    #: stored as Parquet); None for a URL.
    connection: Mapped[str | None] = mapped_column(String(40), nullable=True)
    query: Mapped[str | None] = mapped_column(Text, nullable=True)
    target: Mapped[str] = mapped_column(String(1024))
    #: Under tmp/ only: days the imported object is kept (default storage.tmp_days).
    expires_in_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: ``host:pid:start-time`` of the process running it (balsam.domain.journal).
    process: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The storage server's multipart upload being filled, once there is one.
    upload_id: Mapped[str | None] = mapped_column(Text, nullable=True)


class Run(Base):
    """A recorded run of a pipeline, notebook or script of the project's repository at
    one commit: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``.

    While it runs, ``process`` names the Balsam process running it and ``access_key``
    the storage key minted for it (the id only; the secret is never stored), so one a
    crash left behind is failed and its key revoked at the next start
    (:mod:`balsam.domain.runs.recovery`). ``record`` is the run's record (canonical
    JSON), written once when it ends, with its SHA-256 (also in the audit chain)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_project_created", "project_id", "created_at"),
        Index("ix_runs_state", "state"),
    )

    #: Random, URL-safe; not a secret (the caller must be a member as well).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    branch: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(1024))
    #: "pipeline" | "notebook" | "script"
    kind: Mapped[str] = mapped_column(String(16))
    commit: Mapped[str] = mapped_column(String(64))
    #: Whether ``commit`` is a snapshot of a workspace's uncommitted changes.
    dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    parameters: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    template_id: Mapped[str] = mapped_column(String(63))
    #: ``<template>-<version>``: the environment it ran in.
    environment: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    rerun_of: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: How a re-run was asked for: "exact" | "latest-inputs" | "new-parameters" | "head".
    rerun_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: ``host:pid:start-time`` of the process running it (balsam.domain.journal).
    process: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The run's storage key while it runs (its id only).
    access_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    record: Mapped[str | None] = mapped_column(Text, nullable=True)
    record_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The run's OpenLineage events (JSON lines), written when it ends.
    openlineage: Mapped[str | None] = mapped_column(Text, nullable=True)

    nodes: Mapped[list[RunNode]] = relationship(
        cascade="all, delete-orphan", order_by="RunNode.position", lazy="selectin"
    )


class RunNode(Base):
    """One node of a run, with its own state, times and error."""

    __tablename__ = "run_nodes"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: The node's folder of results: ``runs/<run>/<key>/``.
    key: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(1024))
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunArtifact(Base):
    """An object version a run's node read (``input``) or wrote (``output``), by key,
    S3 version id and SHA-256: the lineage of the project's data."""

    __tablename__ = "run_artifacts"
    __table_args__ = (
        Index("ix_run_artifacts_object", "project_id", "path", "version_id"),
        Index("ix_run_artifacts_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(100))
    #: "input" | "output" (kept with the run) | "published" (its stable path)
    role: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    version_id: Mapped[str] = mapped_column(String(128), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
