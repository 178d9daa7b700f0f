"""A workspace's home as the local provider prepares it: user values reach
``~/.gitconfig`` through ``git config`` as literal values, and root never follows
a link the workspace's user planted there."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from balsam.domain.workspaces.templates import load_templates
from balsam.providers.workspaces.base import WorkspaceSecrets, WorkspaceSpec
from balsam.providers.workspaces.jupyter import free_port
from balsam.providers.workspaces.local import LocalWorkspaceProvider

#: What PATCH /api/v1/users/<self> accepted before: a new section in ~/.gitconfig
#: whose command git runs at every status.
HOSTILE_EMAIL = 'a@b.c"\n[core]\n\tfsmonitor = "touch /tmp/balsam-pwned"'
HOSTILE_NAME = 'Eve"\n[core]\n\tpager = "touch /tmp/balsam-pwned" #'


@pytest.fixture(scope="module")
def clone_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A project repository served by ``git daemon`` (another uid refuses file://)."""
    scratch = tmp_path_factory.mktemp("repos")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", "--bare", "-b", "main", str(scratch / "p.git")], check=True)
    subprocess.run([*git, "clone", "-q", str(scratch / "p.git"), str(scratch / "w")], check=True)
    (scratch / "w" / "README.md").write_text("hej\n")
    for args in (["add", "README.md"], ["commit", "-qm", "init"], ["push", "-q", "origin", "main"]):
        subprocess.run([*git, *args], cwd=scratch / "w", check=True)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            f"--base-path={scratch}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(scratch),
        ],
        stderr=subprocess.DEVNULL,
    )
    yield f"git://127.0.0.1:{port}/p.git"
    daemon.terminate()
    daemon.wait(timeout=10)


def _spec(
    clone_url: str, *, name: str = "Ada", email: str = "ada@example.org", branch: str = "main"
) -> WorkspaceSpec:
    template = load_templates(None)["python"]
    return WorkspaceSpec(
        workspace_id="ws",
        project_id="p",
        branch=branch,
        owner_username="ada",
        owner_name=name,
        owner_email=email,
        environment=template.environment,
        limits=template.limits,
        base_url="/workspaces/ws/",
        clone_url=clone_url,
        env={},
        secrets=WorkspaceSecrets("AK", "SK", "ada", "git-token", secrets.token_urlsafe(24)),
    )


def _prepare(provider: LocalWorkspaceProvider, spec: WorkspaceSpec) -> Path:
    (provider.root / spec.workspace_id).mkdir(exist_ok=True)
    home: Path = provider._prepare_home(spec, provider._uid(spec.workspace_id))
    return home


def _config(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "config", "--file", str(home / ".gitconfig"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_hostile_stored_values_stay_literal_in_gitconfig(
    provider: LocalWorkspaceProvider, clone_url: str
) -> None:
    """Values stored before the API refused them (old data) still cannot add
    configuration: git itself writes them, quoted."""
    home = _prepare(provider, _spec(clone_url, name=HOSTILE_NAME, email=HOSTILE_EMAIL))
    assert _config(home, "--get", "user.email").stdout == HOSTILE_EMAIL + "\n"
    assert _config(home, "--get", "user.name").stdout == HOSTILE_NAME + "\n"
    assert _config(home, "--get", "credential.helper").stdout == "store\n"
    assert _config(home, "--get", "core.fsmonitor").returncode == 1  # no such key
    assert _config(home, "--get", "core.pager").returncode == 1
    assert sorted(_config(home, "--name-only", "--list").stdout.split()) == [
        "credential.helper",
        "user.email",
        "user.name",
    ]
    if os.geteuid() == 0:  # written by the workspace's user, not root
        assert (home / ".gitconfig").stat().st_uid == provider._uid("ws")


def test_an_earlier_gitconfig_is_replaced(provider: LocalWorkspaceProvider, clone_url: str) -> None:
    """A home from the previous release may hold the injected section already."""
    home = _prepare(provider, _spec(clone_url))
    (home / ".gitconfig").write_text('[core]\n\tfsmonitor = "touch /tmp/balsam-pwned"\n')
    _prepare(provider, _spec(clone_url))
    assert _config(home, "--get", "core.fsmonitor").returncode == 1
    assert _config(home, "--get", "user.email").stdout == "ada@example.org\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could be made to follow the link")
def test_root_follows_no_link_planted_in_the_home(
    provider: LocalWorkspaceProvider, clone_url: str, tmp_path: Path
) -> None:
    home = _prepare(provider, _spec(clone_url))
    precious = tmp_path / "precious"
    precious.write_text("root's\n")
    precious.chmod(0o600)
    for name in (".git-credentials", ".gitconfig"):
        (home / name).unlink()
        (home / name).symlink_to(precious)
    _prepare(provider, _spec(clone_url))
    assert precious.read_text() == "root's\n"
    assert precious.stat().st_uid == 0
    assert not (home / ".git-credentials").is_symlink()
    assert "git-token" in (home / ".git-credentials").read_text()
