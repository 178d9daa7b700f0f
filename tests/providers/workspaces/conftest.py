"""Fixtures of the workspace provider tests."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from balsam.hostuids import HostUidRegistry
from balsam.providers.workspaces.environments import EnvironmentBuilder
from balsam.providers.workspaces.local import LocalWorkspaceProvider


@pytest.fixture
def provider(tmp_path: Path) -> LocalWorkspaceProvider:
    """A local provider in a temporary data directory, with a uid block of its own."""
    (tmp_path / "data").mkdir(mode=0o711)
    tmp_path.chmod(0o711)
    registry = HostUidRegistry(
        tmp_path / "registry", base=1_600_000_000 + secrets.randbelow(1000) * 100
    )
    return LocalWorkspaceProvider(
        tmp_path / "data" / "workspaces",
        EnvironmentBuilder(tmp_path / "data" / "env"),
        uid_base=registry.base,
        uid_registry=registry,
    )
