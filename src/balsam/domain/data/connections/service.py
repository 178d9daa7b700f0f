"""A project's data connections: the rules.

* Owners (and admins) create and delete connections; members list, read and use
  them (their workspaces get them, imports run queries on them); everyone else is
  told the project does not exist (404), and the denial is audited.
* A name is an identifier usable in an environment variable, upper-cased, unique in
  the project. Settings that are not secret are stored as given; the secret is sealed
  (:mod:`.sealing`) and never shown again: answers say ``secretSet``.
* No secret reaches a log, an audit record, an answer or an error message.
"""

from __future__ import annotations

import logging
from typing import IO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import DataConnection
from balsam.domain.audit.service import AuditRecord
from balsam.domain.data.connections import kinds
from balsam.domain.data.connections.query_types import PostgresTarget, QueryLimits, QueryResult
from balsam.domain.data.connections.schemas import ConnectionPublic
from balsam.domain.data.connections.sealing import (
    KeyRing,
    KeyUnusable,
    SecretUnreadable,
    is_current,
    key_ring,
    seal,
    unseal,
)
from balsam.domain.identity.service import Actor
from balsam.domain.outbound import check_outbound_url
from balsam.domain.projects.access import Need, require
from balsam.errors import N_, Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)


def bound_to(project_id: str, name: str, kind: str) -> str:
    """What a sealed secret is bound to: it opens for this row only."""
    return f"connection:{project_id}/{name}/{kind}"


def public(row: DataConnection) -> ConnectionPublic:
    return ConnectionPublic(
        name=row.name,
        kind=row.kind,
        settings=dict(row.settings),
        secret_set=row.secret_sealed is not None,
        variables=kinds.variables(row.name, row.kind),
        created_by=row.created_by,
        created_at=row.created_at,
    )


class ConnectionService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @property
    def _keys(self) -> KeyRing:
        return key_ring(self.ctx.settings)

    def _require(self, actor: Actor, project_id: str, need: Need, action: str) -> str:
        with self.ctx.sessions() as session:
            return require(self.ctx, session, actor, project_id, need, action).id

    # -- managing -----------------------------------------------------------------------

    def create(self, actor: Actor, project_id: str, data: kinds.Create) -> ConnectionPublic:
        """Store a new connection; Conflict if the project has one of that name."""
        name = kinds.normal_name(data.name)
        settings, secret = kinds.split(data)
        project_id = self._require(actor, project_id, "owner", "connection.create")
        sealed = seal(self._keys, secret, bound_to(project_id, name, data.kind))
        row = DataConnection(
            project_id=project_id,
            name=name,
            kind=data.kind,
            settings=settings,
            secret_sealed=sealed,
            created_by=actor.username,
        )
        try:
            with self.ctx.sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            raise Conflict(
                N_("The project already has a connection named '%(name)s'."),
                params={"name": name},
            ) from None
        self._audit(actor, "connection.create", project_id, name, kind=data.kind)
        return public(row)

    def list(self, actor: Actor, project_id: str) -> list[ConnectionPublic]:
        project_id = self._require(actor, project_id, "member", "connection.list")
        with self.ctx.sessions() as session:
            rows = session.scalars(
                select(DataConnection)
                .where(DataConnection.project_id == project_id)
                .order_by(DataConnection.name)
            ).all()
            return [public(r) for r in rows]

    def get(self, actor: Actor, project_id: str, name: str) -> ConnectionPublic:
        project_id = self._require(actor, project_id, "member", "connection.read")
        with self.ctx.sessions() as session:
            return public(self._row(session, project_id, name))

    def delete(self, actor: Actor, project_id: str, name: str) -> None:
        """Forget a connection. Workspaces that are running keep its variables until
        they stop; none gets them at its next start."""
        project_id = self._require(actor, project_id, "owner", "connection.delete")
        with self.ctx.sessions() as session, session.begin():
            row = self._row(session, project_id, name)
            session.delete(row)
            kind = row.kind
        self._audit(actor, "connection.delete", project_id, row.name, kind=kind)

    def _row(self, session: Session, project_id: str, name: str) -> DataConnection:
        row = session.scalar(
            select(DataConnection).where(
                DataConnection.project_id == project_id,
                # ASCII only, as on creation (a dotless i upper-cases to 'I').
                DataConnection.name == (name.upper() if name.isascii() else ""),
            )
        )
        if row is None:
            raise NotFound(N_("No connection '%(name)s'."), params={"name": name[:40]})
        return row

    # -- using --------------------------------------------------------------------------

    def workspace_environment(self, project_id: str) -> dict[str, str]:
        """``BALSAM_CONN_*`` of every connection of the project, secrets included, for
        a workspace starting now (its owner is a member: the supervisor starts no
        locked workspace). A secret that no longer opens (the key changed) leaves its
        connection out, with a warning that names it."""
        with self.ctx.sessions() as session:
            rows = session.scalars(
                select(DataConnection).where(DataConnection.project_id == project_id)
            ).all()
        env: dict[str, str] = {}
        if not rows:
            return env
        try:
            keys = self._keys
        except KeyUnusable as exc:
            log.warning("connections of project %s left out of a workspace: %s", project_id, exc)
            return env
        for row in rows:
            try:
                secret = self._open(keys, row)
            except SecretUnreadable:
                log.warning(
                    "connection %s of project %s: its secret does not open with this "
                    "installation's key; left out of the workspace",
                    row.name,
                    project_id,
                )
                continue
            env.update(kinds.environment(row.name, row.kind, row.settings, secret))
        return env

    def postgres_target(self, actor: Actor, project_id: str, name: str) -> PostgresTarget:
        """Where an import of ``actor`` connects (a member's), its password unsealed.
        InvalidInput for another kind of connection, or a host on a private network
        that no administrator allowed (``source_private_hosts``): the server itself
        connects there."""
        project_id = self._require(actor, project_id, "member", "connection.use")
        with self.ctx.sessions() as session:
            row = self._row(session, project_id, name)
        if row.kind != "postgresql":
            raise InvalidInput(
                N_("The connection '%(name)s' is not a PostgreSQL connection."),
                params={"name": row.name},
            )
        settings = row.settings
        host = f"[{settings['host']}]" if ":" in settings["host"] else settings["host"]
        check_outbound_url(
            f"postgresql://{host}:{settings['port']}",
            self.ctx.settings.source_private_hosts,
            field="host",
        )
        return PostgresTarget(
            host=settings["host"],
            port=int(settings["port"]),
            database=settings["database"],
            user=settings["user"],
            password=self._open(self._keys, row),
        )

    def query_to_parquet(
        self, actor: Actor, project_id: str, name: str, query: str, sink: IO[bytes]
    ) -> QueryResult:
        """Run ``query`` read-only on the PostgreSQL connection ``name`` and write its
        result to ``sink`` as Parquet (see :func:`.query.run_query_to_parquet` for the
        limits and errors). Audited as ``connection.use`` (name, rows, bytes; never
        the query's values)."""
        target = self.postgres_target(actor, project_id, name)
        conf = self.ctx.settings.connections
        limits = QueryLimits(
            timeout_seconds=conf.query_timeout_seconds,
            max_rows=conf.query_max_rows,
            max_bytes=conf.query_max_bytes,
        )
        # Loaded on the first query: psycopg and pyarrow are large, most installations
        # run few queries, and the control plane's memory is measured (bench/).
        from balsam.domain.data.connections.query import run_query_to_parquet

        result = run_query_to_parquet(target, query, sink, limits)
        self._audit(
            actor, "connection.use", project_id, name.upper(), rows=result.rows, bytes=result.bytes
        )
        return result

    def _open(self, keys: KeyRing, row: DataConnection) -> str:
        if row.secret_sealed is None:
            return ""
        return unseal(keys, row.secret_sealed, bound_to(row.project_id, row.name, row.kind))

    def reseal(self) -> int:
        """Seal every secret not sealed with the current key again with it (after a
        key rotation); the number resealed. SecretUnreadable if one opens with no key."""
        keys, count = self._keys, 0
        with self.ctx.sessions() as session, session.begin():
            for row in session.scalars(select(DataConnection)).all():
                if row.secret_sealed is None or is_current(keys, row.secret_sealed):
                    continue
                secret = self._open(keys, row)
                row.secret_sealed = seal(keys, secret, bound_to(row.project_id, row.name, row.kind))
                count += 1
        return count

    def _audit(
        self, actor: Actor, action: str, project_id: str, name: str, **details: object
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/connection:{name}",
                project_id=project_id,
                request_id=actor.request_id,
                details={"name": name, **details},
            )
        )
