"""The application context: everything one Balsam app instance owns. Data only.

Built by :func:`balsam.wiring.build_context` (never at import time) and reached
from requests through ``request.app.state.ctx``; tests build as many as they need
(:func:`balsam.wiring.derive` for a copy with other parts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from balsam.settings import Settings

if TYPE_CHECKING:
    from balsam.domain.audit.service import AuditLog
    from balsam.domain.workspaces.secrets import WorkspaceSecretStore
    from balsam.domain.workspaces.supervisor import WorkspaceSupervisor
    from balsam.domain.workspaces.templates import WorkspaceTemplate
    from balsam.providers.bundle import Providers


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    providers: Providers
    audit: AuditLog
    templates: dict[str, WorkspaceTemplate]
    workspace_secrets: WorkspaceSecretStore
    #: Runs workspace starts and stops in the background; one per context, attached
    #: by the wiring right after the context is made.
    supervisor: WorkspaceSupervisor = field(init=False)
