"""The file-system side of workspace isolation (local provider as root)."""

from __future__ import annotations

import stat
from pathlib import Path

from balsam.providers.workspaces.unix import share_with_workspaces


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_environments_outside_the_data_dir_become_reachable(tmp_path: Path) -> None:
    # An operator's environments folder under a private folder (CI checks out
    # under a 0700 folder): workspace users must still pass through to it.
    private = tmp_path / "private"
    environments = private / "checkout" / "environments"
    environments.mkdir(parents=True)
    private.chmod(0o700)
    data_dir = tmp_path / "data"
    root = data_dir / "workspaces"
    root.mkdir(parents=True)
    secret = data_dir / "balsam.db"
    secret.write_text("")
    secret.chmod(0o644)

    share_with_workspaces(root, environments)

    for folder in (private, private / "checkout", environments, data_dir, root):
        assert _mode(folder) & stat.S_IXOTH, folder
    assert not _mode(private) & stat.S_IROTH  # traversable, never listable
    assert _mode(secret) & 0o077 == 0


def test_environments_inside_the_data_dir_stay_open(tmp_path: Path) -> None:
    root = tmp_path / "workspaces"
    environments = tmp_path / "environments"
    root.mkdir()
    environments.mkdir(mode=0o755)
    repositories = tmp_path / "repositories"
    repositories.mkdir(mode=0o755)

    share_with_workspaces(root, environments)

    assert _mode(environments) == 0o755
    assert _mode(repositories) & 0o077 == 0
