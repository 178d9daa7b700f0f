"""Git requests are bounded: a review's kernel opened 300 pushes that sent a header and
one byte each, held ~220 git processes (2.6 GB) as root, and starved the health check.
Now one user has at most ``max_requests_per_user`` served at once (more: 503 with
Retry-After), and a body that stops arriving ends its request."""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser


def _held_push(live_url: str, pid: str, user: TestUser) -> socket.socket:
    """A push that sends its header and one byte of a 100 MB body, then waits."""
    where = urlsplit(live_url)
    auth = base64.b64encode(f"{user.username}:{user.token}".encode()).decode()
    sock = socket.create_connection((where.hostname or "127.0.0.1", where.port or 80))
    sock.sendall(
        (
            f"POST /git/{pid}.git/git-receive-pack HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Authorization: Basic {auth}\r\n"
            "Content-Type: application/x-git-receive-pack-request\r\n"
            "Content-Length: 100000000\r\n\r\n0"
        ).encode()
    )
    return sock


def _refs(live_url: str, pid: str, user: TestUser) -> httpx.Response:
    return httpx.get(
        f"{live_url}/git/{pid}.git/info/refs?service=git-upload-pack",
        auth=(user.username, user.token),
        timeout=30,
    )


def _git_processes() -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                b"git\x00http-backend"
            ):
                count += 1
    return count


@contextlib.contextmanager
def _held(live_url: str, pid: str, user: TestUser, count: int) -> Iterator[list[socket.socket]]:
    socks = [_held_push(live_url, pid, user) for _ in range(count)]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_one_user_holds_at_most_a_few_git_requests(
    live_url: str, ctx: AppContext, alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    pid, per_user = project["id"], ctx.settings.git.max_requests_per_user
    before = _git_processes()
    with _held(live_url, pid, alice, per_user + 6):
        deadline = time.monotonic() + 10
        while _refs(live_url, pid, alice).status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        refused = _refs(live_url, pid, alice)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5"
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert _git_processes() - before <= per_user  # the rest never got a git process
        # Another member is served meanwhile.
        alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
        assert _refs(live_url, pid, bob).status_code == 200
    # Closed: their slots come back.
    deadline = time.monotonic() + 10
    while _refs(live_url, pid, alice).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _refs(live_url, pid, alice).status_code == 200


def test_a_body_that_stops_arriving_ends_its_request(
    live_url: str, ctx: AppContext, alice: TestUser, project: dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr(ctx.settings.git, "body_idle_seconds", 1.0)
    sock = _held_push(live_url, project["id"], alice)
    try:
        sock.settimeout(15)
        answer = sock.recv(4096).decode()
    finally:
        sock.close()
    assert answer.startswith("HTTP/1.1 408"), answer


@pytest.fixture(autouse=True)
def _slots_back(live_url: str, alice: TestUser, project: dict[str, Any]) -> Iterator[None]:
    """Every slot is free again after each test (a leak would starve later ones)."""
    yield
    deadline = time.monotonic() + 15
    while _refs(live_url, project["id"], alice).status_code != 200:
        assert time.monotonic() < deadline, "a git slot was never given back"
        time.sleep(0.2)
