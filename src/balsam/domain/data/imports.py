"""Imports into a project's bucket — of a file from an http(s) URL, or of a query's
result on one of its PostgreSQL data connections (as Parquet): asking for one, and
reading how it went. Members (and admins) may import; others are told the project does
not exist. The work itself is done in the background (:mod:`.import_runs`, run by an
:class:`~.import_worker.ImportWorker`).

An import is checked when asked for (the target path as any data path, ``expiresInDays``
as an upload's, the URL under the outbound rule: http or https, no credentials, public
addresses unless the host is allowed in ``BALSAM_SOURCE_PRIVATE_HOSTS``), queued in the
database (:class:`~balsam.db.models.DataImport`) and audited (``data.import``). When it
runs, every hop is checked again and connected to only at the addresses checked
(:mod:`.fetch`).
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import DataImport
from balsam.domain.audit.service import AuditRecord, Outcome
from balsam.domain.data.connections.service import ConnectionService
from balsam.domain.data.fetch import check_url
from balsam.domain.data.import_schemas import ImportCreate, ImportList, ImportPublic
from balsam.domain.data.service import DataService, check_path
from balsam.domain.identity.service import Actor
from balsam.domain.projects.access import require
from balsam.errors import N_, InvalidInput, NotFound

#: A query that reads, after any leading comments (what else it may do is refused by
#: its read-only transaction; this is for a clear answer before it is queued).
_READING = re.compile(
    r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(?:\(|(?:select|with|values|table)\b)", re.I | re.S
)
#: Most imports a listing shows.
LIST_LIMIT = 100


class ImportService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def _member(self, actor: Actor, project_id: str, action: str) -> None:
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", action)

    def create(self, actor: Actor, project_id: str, body: ImportCreate) -> ImportPublic:
        """Queue an import of ``body.url`` to ``body.target``; InvalidInput for a target,
        expiry or URL that may not be used."""
        self._member(actor, project_id, "data.import")
        check_path(body.target)
        DataService(self.ctx).check_expiry(body.target, body.expires_in_days)
        connection = None
        if body.url is not None:
            check_url(body.url, self.ctx.settings.source_private_hosts)
        elif body.connection is not None:
            if not _READING.match(body.query or ""):
                raise InvalidInput(
                    N_("An import runs a query that reads: SELECT, WITH, VALUES or TABLE.")
                )
            # There, a PostgreSQL connection, its host allowed (NotFound, InvalidInput).
            ConnectionService(self.ctx).postgres_target(actor, project_id, body.connection)
            connection = body.connection.upper()
        row = DataImport(
            id=secrets.token_urlsafe(16),
            project_id=project_id,
            url=body.url,
            connection=connection,
            query=body.query if connection else None,
            target=body.target,
            expires_in_days=body.expires_in_days,
            state="queued",
            created_by=actor.username,
            request_id=actor.request_id[:64],
        )
        with self.ctx.sessions() as session, session.begin():
            session.add(row)
            session.flush()
            public = to_public(row)
        audit_import(self.ctx, row, "success", state="queued")
        return public

    def get(self, actor: Actor, project_id: str, import_id: str) -> ImportPublic:
        self._member(actor, project_id, "data.read")
        with self.ctx.sessions() as session:
            row = session.get(DataImport, import_id)
            if row is None or row.project_id != project_id:
                raise NotFound(N_("No import '%(import)s'."), params={"import": import_id})
            return to_public(row)

    def list(self, actor: Actor, project_id: str) -> ImportList:
        """The project's latest imports, newest first."""
        self._member(actor, project_id, "data.read")
        with self.ctx.sessions() as session:
            rows = session.scalars(
                select(DataImport)
                .where(DataImport.project_id == project_id)
                .order_by(DataImport.created_at.desc(), DataImport.id)
                .limit(LIST_LIMIT)
            ).all()
            return ImportList(items=[to_public(r) for r in rows])


def source_of(row: DataImport) -> str:
    """Where an import's object comes from, as its provenance says: the URL, or the
    data connection the query ran on."""
    if row.url is not None:
        return row.url
    return f"query on connection {row.connection}"


def to_public(row: DataImport) -> ImportPublic:
    return ImportPublic(
        id=row.id,
        state=row.state,  # type: ignore[arg-type]
        url=row.url,
        connection=row.connection,
        query=row.query,
        target=row.target,
        error=row.error,
        size=row.size,
        sha256=row.sha256,
        version_id=row.version_id,
        created_at=row.created_at,
        created_by=row.created_by,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def audit_import(ctx: AppContext, row: DataImport, outcome: Outcome, **details: object) -> None:
    """A ``data.import`` record of ``row`` (asked for, done or failed), as its creator."""
    ctx.audit.record(
        AuditRecord(
            actor=row.created_by,
            action="data.import",
            target=f"project:{row.project_id}/data:{row.target}"[:300],
            outcome=outcome,
            project_id=row.project_id,
            request_id=row.request_id,
            details={"importId": row.id, "source": source_of(row), "path": row.target, **details},
        )
    )
