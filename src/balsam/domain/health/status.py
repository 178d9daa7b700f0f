"""The system status administrators see: each part's state, as readiness has it,
plus what only they may know: the knowledge libraries' sync, operations waiting
for repair, and which providers this installation runs on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from balsam import __version__
from balsam.context import AppContext
from balsam.db.models import KnowledgeLibrary, PendingOperation
from balsam.domain.health.service import CheckRunner, HealthService, State
from balsam.domain.identity.service import Actor
from balsam.errors import N_, Forbidden


@dataclass(frozen=True)
class LibrarySync:
    name: str
    status: str
    last_synced_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class SystemStatus:
    components: dict[str, State]
    libraries: list[LibrarySync]
    #: Interrupted operations not yet completed or undone (crash journal rows).
    pending_repairs: int
    version: str
    database: str
    storage: str
    workspaces: str

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.components.values())


def system_status(
    ctx: AppContext, actor: Actor, runner: CheckRunner, *, library_sync_running: bool
) -> SystemStatus:
    """The status of this installation; administrators only (403 otherwise).
    Bounded in time like readiness: a hung backend shows as ``timeout``."""
    if not actor.is_admin:
        raise Forbidden(N_("Administrators only."))
    readiness = HealthService(ctx).readiness(runner, library_sync_running=library_sync_running)
    with ctx.sessions() as session:
        libraries = [
            LibrarySync(
                name=lib.name,
                status=lib.sync_status,
                last_synced_at=lib.last_synced_at,
                error=lib.sync_error,
            )
            for lib in session.scalars(select(KnowledgeLibrary).order_by(KnowledgeLibrary.name))
        ]
        repairs = session.scalar(select(func.count()).select_from(PendingOperation)) or 0
    settings = ctx.settings
    return SystemStatus(
        components=readiness.components,
        libraries=libraries,
        pending_repairs=repairs,
        version=__version__,
        database=ctx.engine.dialect.name,
        storage=settings.storage.provider,
        workspaces=settings.workspaces.provider,
    )
