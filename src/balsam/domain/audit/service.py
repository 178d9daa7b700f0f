"""Audit trail: append-only records chained by SHA-256.

Each record's ``hash`` covers its own fields and the previous record's hash,
so deleting or editing any record breaks :func:`verify_chain` from that point
on. Records are written in their own short transaction (never rolled back
with the operation they describe, so failures and denials are kept too).
Appends are serialised by a process-local lock plus a unique constraint on
``hash``; with several replicas a concurrent append fails the unique check
and is retried.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from balsam.db.models import AuditEvent, utcnow

GENESIS = "0" * 64
Outcome = Literal["success", "failure", "denied"]


@dataclass(frozen=True)
class AuditRecord:
    """What happened, before it is chained."""

    actor: str
    action: str
    target: str
    outcome: Outcome = "success"
    project_id: str | None = None
    request_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _digest(prev_hash: str, at: datetime, rec: AuditRecord | AuditEvent) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": at.isoformat(),
            "actor": rec.actor,
            "action": rec.action,
            "target": rec.target,
            "project": rec.project_id,
            "outcome": rec.outcome,
            "request": rec.request_id,
            "details": rec.details,
        },
        sort_keys=True,
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    """Writes and reads the audit trail."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()

    def record(self, rec: AuditRecord) -> None:
        """Append one record in its own transaction."""
        with self._lock:
            for _attempt in range(5):
                try:
                    self._append(rec)
                    return
                except IntegrityError:  # another replica appended first
                    continue
            raise RuntimeError("could not append to the audit trail")

    def _append(self, rec: AuditRecord) -> None:
        with self._sessions() as session, session.begin():
            prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
            prev_hash = prev or GENESIS
            at = utcnow()
            # JSON round-trip so the stored details hash identically when read back.
            details = json.loads(json.dumps(rec.details, default=str))
            rec = AuditRecord(**{**rec.__dict__, "details": details})
            session.add(
                AuditEvent(
                    at=at,
                    actor=rec.actor,
                    action=rec.action,
                    target=rec.target,
                    project_id=rec.project_id,
                    outcome=rec.outcome,
                    request_id=rec.request_id,
                    details=details,
                    prev_hash=prev_hash,
                    hash=_digest(prev_hash, at, rec),
                )
            )

    def page(
        self,
        *,
        project_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AuditEvent], int]:
        """Newest first; only records of ``project_id``, of ``actor`` and whose action
        starts with ``action``, for each that is given."""
        with self._sessions() as session:
            query = select(AuditEvent)
            count = select(func.count()).select_from(AuditEvent)
            wheres = []
            if project_id is not None:
                wheres.append(AuditEvent.project_id == project_id)
            if actor is not None:
                wheres.append(AuditEvent.actor == actor)
            if action is not None:
                wheres.append(AuditEvent.action.startswith(action, autoescape=True))
            if wheres:
                query, count = query.where(*wheres), count.where(*wheres)
            rows = session.scalars(
                query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
            ).all()
            return list(rows), int(session.scalar(count) or 0)

    def verify_chain(self) -> tuple[bool, int, int | None]:
        """Check every record: ``(ok, records checked, id of first bad record)``."""
        prev_hash = GENESIS
        checked = 0
        for event in self._iter_all():
            if event.prev_hash != prev_hash or event.hash != _digest(prev_hash, event.at, event):
                return False, checked, event.id
            prev_hash = event.hash
            checked += 1
        return True, checked, None

    def _iter_all(self) -> Iterator[AuditEvent]:
        last_id = 0
        while True:
            with self._sessions() as session:
                batch = session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.id > last_id)
                    .order_by(AuditEvent.id)
                    .limit(1000)
                ).all()
            if not batch:
                return
            yield from batch
            last_id = batch[-1].id
