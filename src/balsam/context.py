"""The application context: everything one Balsam app instance owns.

Built by :func:`balsam.app.build_context` (never at import time) and reached
from requests through ``request.app.state.ctx``; tests build as many as they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from balsam.domain.audit.service import AuditLog
from balsam.providers.git.base import GitProvider
from balsam.providers.storage.base import StorageProvider
from balsam.providers.workspaces.base import WorkspaceProvider
from balsam.settings import Settings

if TYPE_CHECKING:
    from balsam.domain.workspaces.secrets import WorkspaceSecretStore
    from balsam.domain.workspaces.supervisor import WorkspaceSupervisor
    from balsam.domain.workspaces.templates import WorkspaceTemplate


@dataclass
class Providers:
    """The backends, chosen by name in settings (or injected by tests)."""

    git: GitProvider
    storage: StorageProvider
    workspaces: WorkspaceProvider


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    providers: Providers
    audit: AuditLog
    templates: dict[str, WorkspaceTemplate]
    workspace_secrets: WorkspaceSecretStore
    #: Runs workspace starts and stops in the background; one per context (a copy
    #: made with ``dataclasses.replace`` gets its own).
    supervisor: WorkspaceSupervisor = field(init=False)

    def __post_init__(self) -> None:
        from balsam.domain.workspaces.supervisor import WorkspaceSupervisor

        self.supervisor = WorkspaceSupervisor(self)
