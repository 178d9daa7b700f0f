"""The application context: everything one Balsam app instance owns.

Built by :func:`balsam.app.create_app` (never at import time) and reached from
requests through ``request.app.state.ctx``; tests build as many as they need.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from balsam.domain.audit.service import AuditLog
from balsam.providers.git.base import GitProvider
from balsam.providers.storage.base import StorageProvider
from balsam.settings import Settings


@dataclass
class Providers:
    """The backends, chosen by name in settings (or injected by tests)."""

    git: GitProvider
    storage: StorageProvider


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    providers: Providers
    audit: AuditLog
