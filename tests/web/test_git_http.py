"""The git smart-HTTP bridge, driven by the real git client over loopback."""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from balsam.errors import NotFound
from balsam.providers.git.base import Author
from balsam.providers.git.local import LocalGitProvider, git_environment
from balsam.web.git_http import git_http_response, git_service_of

AUTHOR = Author("Test", "test@example.org")
CLIENT_ENV = {
    "GIT_AUTHOR_NAME": "CLI",
    "GIT_AUTHOR_EMAIL": "cli@example.org",
    "GIT_COMMITTER_NAME": "CLI",
    "GIT_COMMITTER_EMAIL": "cli@example.org",
}


@contextlib.contextmanager
def serve_app(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class GitServer:
    """A running test app: ``/git/{repo}.git/{path}`` → the bridge, no auth."""

    base_url: str
    provider: LocalGitProvider
    allow_push: bool = True
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def url(self, repo: str) -> str:
        return f"{self.base_url}/git/{repo}.git"


def make_app(server: GitServer) -> Starlette:
    async def git_endpoint(request: Request) -> Response:
        path = request.path_params["path"]
        server.requests.append((request.method, path, request.headers.get("transfer-encoding")))
        try:
            repo_path = server.provider.repository_path(request.path_params["repo"])
        except NotFound:
            return PlainTextResponse("no such repository", status_code=404)
        return await git_http_response(
            request,
            repo_path=repo_path,
            path_info=f"/{path}",
            remote_user="tester",
            allow_push=server.allow_push,
        )

    route = Route("/git/{repo}.git/{path:path}", git_endpoint, methods=["GET", "POST"])
    return Starlette(routes=[route])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    provider = LocalGitProvider(tmp_path / "repos")
    provider.create_repository(
        "demo",
        default_branch="main",
        files={"README.md": b"# Demo\n", "data/å b.txt": b"x\n"},
        message="Initial",
        author=AUTHOR,
    )
    state = GitServer(base_url="", provider=provider)
    with serve_app(make_app(state)) as base_url:
        state.base_url = base_url
        yield state


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The git client, isolated from user config and from any proxy."""
    env = {k: v for k, v in git_environment(CLIENT_ENV).items() if "proxy" not in k.lower()}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_clone_push_fetch(server: GitServer, tmp_path: Path, protocol: str) -> None:
    work = tmp_path / "work"
    git("-c", f"protocol.version={protocol}", "clone", "-q", server.url("demo"), str(work))
    assert (work / "data" / "å b.txt").read_bytes() == b"x\n"
    payload = os.urandom(400 * 1024)
    (work / "big.bin").write_bytes(payload)
    (work / "ny fil ö.txt").write_text("hej\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    git("-c", "http.postBuffer=1024", "push", "-q", "origin", "main", cwd=work)
    assert server.provider.read_file("demo", "main", "big.bin") == payload
    assert server.provider.read_file("demo", "main", "ny fil ö.txt") == b"hej\n"
    assert ("POST", "git-receive-pack", "chunked") in server.requests

    sha = server.provider.commit_files(
        "demo", "main", {"server.txt": b"s"}, message="from server", author=AUTHOR
    )
    git("-c", f"protocol.version={protocol}", "fetch", "-q", "origin", cwd=work)
    assert git("rev-parse", "origin/main", cwd=work).stdout.strip() == sha


def test_push_refused_without_permission(server: GitServer, tmp_path: Path) -> None:
    server.allow_push = False
    work = tmp_path / "work"
    git("clone", "-q", server.url("demo"), str(work))
    before = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    (work / "x.txt").write_text("x")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "x", cwd=work)
    pushed = git("push", "origin", "main", cwd=work, check=False)
    assert pushed.returncode != 0
    assert "403" in pushed.stderr
    git_dir = server.provider.repository_path("demo")
    head = git(f"--git-dir={git_dir}", "rev-parse", "refs/heads/main").stdout.strip()
    assert head == before
    with httpx.Client() as client:
        posted = client.post(f"{server.url('demo')}/git-receive-pack", content=b"0000")
        assert posted.status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "HEAD", 404),
        ("GET", "objects/info/packs", 404),
        ("GET", "info/refs", 404),
        ("GET", "info/refs?service=git-upload-archive", 404),
        ("GET", "info/refs?service=git-upload-pack&service=git-receive-pack", 404),
        ("GET", "git-upload-pack", 405),
        ("POST", "info/refs?service=git-upload-pack", 405),
        ("GET", "../../etc/passwd", 404),
    ],
)
def test_only_smart_http_is_served(server: GitServer, method: str, path: str, status: int) -> None:
    with httpx.Client() as client:
        response = client.request(method, f"{server.url('demo')}/{path}")
    assert response.status_code == status


def test_ref_advertisement(server: GitServer) -> None:
    with httpx.Client() as client:
        response = client.get(f"{server.url('demo')}/info/refs?service=git-upload-pack")
        missing = client.get(f"{server.url('nope')}/info/refs?service=git-upload-pack")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    assert b"refs/heads/main" in response.content
    assert missing.status_code == 404


def test_gzip_body_and_protocol_v2(server: GitServer) -> None:
    request = b"0014command=ls-refs\n0000"
    with httpx.Client() as client:
        response = client.post(
            f"{server.url('demo')}/git-upload-pack",
            content=gzip.compress(request),
            headers={
                "Content-Type": "application/x-git-upload-pack-request",
                "Content-Encoding": "gzip",
                "Git-Protocol": "version=2",
            },
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-git-upload-pack-result"
    assert b"refs/heads/main" in response.content


def _backend_groups() -> set[int]:
    """Process groups led by children of this process (the bridge's backends)."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            pid, ppid, pgrp = int(stat.parent.name), int(fields[1]), int(fields[2])
            if ppid == os.getpid() and pgrp == pid:
                groups.add(pgrp)
    return groups


def _group_alive(pgrp: int) -> bool:
    try:
        os.killpg(pgrp, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(condition: Callable[[], object], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_client_disconnect_kills_backend(server: GitServer) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    before = _backend_groups()  # e.g. the session's SeaweedFS, also a group leader
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(
            b"POST /git/demo.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-git-receive-pack-request\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n00\r\n"
        )
        assert _wait_for(lambda: _backend_groups() - before)
        groups = _backend_groups() - before
    assert _wait_for(lambda: not any(_group_alive(group) for group in groups))


@pytest.mark.parametrize(
    ("path_info", "query", "expected"),
    [
        ("/info/refs", "service=git-upload-pack", "upload-pack"),
        ("/info/refs", "service=git-receive-pack", "receive-pack"),
        ("info/refs", "service=git%2Dreceive-pack", "receive-pack"),
        ("/info/refs", "service=git-receive-pack&service=git-upload-pack", None),
        ("/info/refs", "", None),
        ("/git-upload-pack", "", "upload-pack"),
        ("/git-receive-pack", "service=git-upload-pack", "receive-pack"),
        ("/HEAD", "", None),
        ("/objects/pack/x.pack", "", None),
    ],
)
def test_git_service_of(path_info: str, query: str, expected: str | None) -> None:
    assert git_service_of(path_info, query) == expected
