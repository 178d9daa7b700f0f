"""Where a workspace's secrets wait between starts: one file per workspace,
mode 0600 in a 0700 folder of Balsam's data directory (never the database).
Deleting the workspace deletes the file; its credentials are revoked too."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from balsam.providers.workspaces.base import WorkspaceSecrets


class WorkspaceSecretStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, workspace_id: str) -> Path:
        return self.root / f"{workspace_id}.json"

    def save(self, workspace_id: str, secrets: WorkspaceSecrets) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        fd = os.open(self._path(workspace_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            # The connections' variables are read afresh at every start.
            json.dump({**asdict(secrets), "connection_env": {}}, out)

    def load(self, workspace_id: str) -> WorkspaceSecrets | None:
        try:
            return WorkspaceSecrets(**json.loads(self._path(workspace_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def delete(self, workspace_id: str) -> None:
        self._path(workspace_id).unlink(missing_ok=True)
