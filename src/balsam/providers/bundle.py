"""The set of backends one Balsam instance uses (built by :mod:`balsam.wiring`)."""

from __future__ import annotations

from dataclasses import dataclass

from balsam.providers.git.base import GitProvider
from balsam.providers.identity.base import IdentityProvider
from balsam.providers.storage.base import StorageProvider
from balsam.providers.workspaces.base import WorkspaceProvider


@dataclass
class Providers:
    """The backends, chosen by name in settings (or injected by tests)."""

    git: GitProvider
    storage: StorageProvider
    workspaces: WorkspaceProvider
    #: The organisation's identity provider (OpenID Connect); None when not configured.
    identity: IdentityProvider | None = None
