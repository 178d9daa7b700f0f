"""Git smart HTTP at /git/<project>.git with the real git CLI over loopback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from balsam.context import AppContext
from tests.fixtures.app import PASSWORD, TestUser


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ASKPASS": "/bin/false",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check, timeout=60
    )


def url_for(live_url: str, pid: str, user: str | None = None, secret: str | None = None) -> str:
    auth = f"{user}:{secret}@" if user else ""
    return live_url.replace("http://", f"http://{auth}") + f"/git/{pid}.git"


@pytest.fixture
def project_with_bob(alice: TestUser, bob: TestUser, project: dict[str, Any]) -> str:
    pid: str = project["id"]
    alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    return pid


def test_clone_commit_push_as_member(
    live_url: str, bob: TestUser, ctx: AppContext, project_with_bob: str, tmp_path: Path
) -> None:
    pid = project_with_bob
    work = tmp_path / "w"
    git("clone", url_for(live_url, pid, bob.username, bob.token), str(work))
    assert (work / "README.md").exists()
    (work / "analysis.py").write_text("print('hej')\n")
    git(
        "-c",
        "user.name=Bob",
        "-c",
        "user.email=bob@example.org",
        "commit",
        "-qam",
        "x",
        cwd=work,
        check=False,
    )
    git("add", "analysis.py", cwd=work)
    git(
        "-c",
        "user.name=Bob",
        "-c",
        "user.email=bob@example.org",
        "commit",
        "-qm",
        "analysis",
        cwd=work,
    )
    git("push", "origin", "main", cwd=work)
    assert ctx.providers.git.read_file(pid, "main", "analysis.py") == b"print('hej')\n"


def test_password_works_too(
    live_url: str, alice: TestUser, project: dict[str, Any], tmp_path: Path
) -> None:
    git("clone", url_for(live_url, project["id"], alice.username, PASSWORD), str(tmp_path / "w"))


def test_anonymous_gets_401_and_a_challenge(
    live_url: str, project: dict[str, Any], tmp_path: Path
) -> None:
    import httpx

    r = httpx.get(f"{live_url}/git/{project['id']}.git/info/refs?service=git-upload-pack")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    out = git("clone", url_for(live_url, project["id"]), str(tmp_path / "w"), check=False)
    assert out.returncode != 0 and not (tmp_path / "w" / "README.md").exists()


@pytest.mark.parametrize("secret", ["wrong-password-123", "blsm_notatoken"])
def test_bad_credentials_are_401(
    live_url: str, alice: TestUser, project: dict[str, Any], tmp_path: Path, secret: str
) -> None:
    out = git(
        "clone",
        url_for(live_url, project["id"], alice.username, secret),
        str(tmp_path / "w"),
        check=False,
    )
    assert out.returncode != 0
    assert "401" in out.stderr or "Authentication failed" in out.stderr


def test_token_of_another_user_is_refused(
    live_url: str, alice: TestUser, bob: TestUser, project: dict[str, Any], tmp_path: Path
) -> None:
    out = git(
        "clone",
        url_for(live_url, project["id"], alice.username, bob.token),
        str(tmp_path / "w"),
        check=False,
    )
    assert out.returncode != 0


def test_non_member_learns_nothing(
    live_url: str, bob: TestUser, project: dict[str, Any], tmp_path: Path
) -> None:
    import httpx

    auth = (bob.username, bob.token)
    real = httpx.get(
        f"{live_url}/git/{project['id']}.git/info/refs?service=git-upload-pack", auth=auth
    )
    fake = httpx.get(
        f"{live_url}/git/no-such-project.git/info/refs?service=git-upload-pack", auth=auth
    )
    assert real.status_code == fake.status_code == 403
    assert real.json()["detail"] == fake.json()["detail"]
    push = httpx.post(
        f"{live_url}/git/{project['id']}.git/git-receive-pack", auth=auth, content=b"0000"
    )
    assert push.status_code == 403


def test_only_smart_http_is_served(live_url: str, alice: TestUser, project: dict[str, Any]) -> None:
    import httpx

    auth = (alice.username, alice.token)
    for path in ["HEAD", "config", "objects/info/packs", "../../etc/passwd", "hooks/pre-receive"]:
        r = httpx.get(f"{live_url}/git/{project['id']}.git/{path}", auth=auth)
        assert r.status_code == 404, path
