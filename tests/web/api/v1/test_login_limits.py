"""Login rate limits over real loopback TCP: a local process of another uid (as a
workspace is) is its own address, ``uid:<n>``, so its failed logins never lock
the same user out elsewhere; refusals past the limit are audited once per lock."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from balsam.app import create_app
from balsam.context import AppContext
from balsam.domain.identity.schemas import UserCreate
from balsam.domain.identity.service import IdentityService
from balsam.providers.workspaces.environments import default_python
from balsam.settings import Settings
from balsam.web.peers import Endpoint, peer_address, socket_owner
from tests.fixtures.app import PASSWORD
from tests.fixtures.server import serve

#: Debian's Python: this test run's interpreter may sit in root's 0700 home.
PYTHON = "/usr/bin/python3"
WRONG = "not-the-password"
LIMIT = 3  # failures per (account, address)
ADDRESS_LIMIT = 6  # failures per address, any accounts

#: Run as another uid: log in once per line of stdin ({"user", "password"}) with
#: HTTP Basic over loopback; print one JSON line [status, Retry-After] per try.
CLIENT = """
import base64, json, sys, urllib.error, urllib.request
url = sys.argv[1]
for line in sys.stdin:
    job = json.loads(line)
    basic = base64.b64encode(f"{job['user']}:{job['password']}".encode()).decode()
    req = urllib.request.Request(url, data=b'{"name": "x"}', method="POST", headers={
        "Authorization": "Basic " + basic, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            print(json.dumps([r.status, r.headers.get("Retry-After")]))
    except urllib.error.HTTPError as e:
        print(json.dumps([e.code, e.headers.get("Retry-After")]))
"""


@pytest.fixture
def unused_uid() -> int:
    """A uid no account on this machine has (like a workspace's)."""
    while True:
        uid = 290_000 + secrets.randbelow(9_000)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid


@pytest.fixture
def limited(
    settings: Settings, ctx: AppContext, tmp_path: Path, fresh_database_url: str
) -> Iterator[tuple[FastAPI, str]]:
    """An app of its own (fresh database, low limits) served over loopback TCP."""
    auth = settings.auth.model_copy(
        update={"login_max_failures": LIMIT, "login_max_failures_per_address": ADDRESS_LIMIT}
    )
    app = create_app(
        settings.model_copy(
            update={"auth": auth, "data_dir": tmp_path, "database_url": fresh_database_url}
        ),
        providers=ctx.providers,
    )
    for name in ("admin", "victim"):
        IdentityService(app.state.ctx).create_user(
            None, UserCreate(username=name, password=PASSWORD, is_admin=name == "admin")
        )
    try:
        with serve(app) as url:
            yield app, url
    finally:
        app.state.ctx.engine.dispose()


def tokens_url(base: str) -> str:
    return f"{base}/api/v1/users/me/tokens"


def as_uid(uid: int, base: str, tries: list[tuple[str, str]]) -> list[list[Any]]:
    """Basic-auth logins from a process running as ``uid`` (passwords on stdin)."""
    jobs = "".join(json.dumps({"user": u, "password": p}) + "\n" for u, p in tries)
    done = subprocess.run(
        [PYTHON, "-I", "-c", CLIENT, tokens_url(base)],
        input=jobs,
        capture_output=True,
        text=True,
        check=True,
        user=uid,
        group=uid,
        extra_groups=[],
        cwd="/",
        timeout=120,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def as_root(base: str, user: str, password: str) -> httpx.Response:
    return httpx.post(tokens_url(base), auth=(user, password), json={"name": "x"})


def login_events(app: FastAPI, username: str) -> list[dict[str, Any]]:
    events, _ = app.state.ctx.audit.page(limit=500)
    return [
        {"outcome": e.outcome, **e.details}
        for e in events
        if e.action == "auth.login" and e.target == f"user:{username}"
    ]


def test_failures_from_another_uid_do_not_lock_out_the_user(
    limited: tuple[FastAPI, str], unused_uid: int
) -> None:
    _, base = limited
    results = as_uid(unused_uid, base, [("victim", WRONG)] * (LIMIT + 1))
    assert [status for status, _ in results] == [401] * LIMIT + [429]
    assert as_root(base, "victim", PASSWORD).status_code == 201


def test_failures_from_the_same_address_still_lock(
    limited: tuple[FastAPI, str], unused_uid: int
) -> None:
    _, base = limited
    *_, (status, retry_after) = as_uid(
        unused_uid, base, [("victim", WRONG)] * LIMIT + [("victim", PASSWORD)]
    )
    assert status == 429 and 0 < int(retry_after) <= 300
    for _ in range(LIMIT):
        assert as_root(base, "victim", WRONG).status_code == 401
    refused = as_root(base, "victim", PASSWORD)
    assert refused.status_code == 429 and refused.json()["reason"] == "rate-limited"
    assert refused.headers["content-type"] == "application/problem+json"
    assert 0 < int(refused.headers["retry-after"]) <= 300


def test_the_address_limit_covers_every_account(
    limited: tuple[FastAPI, str], unused_uid: int
) -> None:
    _, base = limited
    spray = [(f"nobody{i}", WRONG) for i in range(ADDRESS_LIMIT)] + [("victim", PASSWORD)]
    assert [s for s, _ in as_uid(unused_uid, base, spray)] == [401] * ADDRESS_LIMIT + [429]
    assert as_root(base, "victim", PASSWORD).status_code == 201


def test_the_audit_names_the_uid(limited: tuple[FastAPI, str], unused_uid: int) -> None:
    app, base = limited
    as_uid(unused_uid, base, [("victim", WRONG)])
    assert as_root(base, "victim", PASSWORD).status_code == 201
    success, failure = login_events(app, "victim")
    assert failure == {
        "outcome": "failure",
        "address": f"uid:{unused_uid}",
        "reason": "bad credentials",
    }
    assert success == {"outcome": "success", "address": "127.0.0.1"}


def test_refusals_past_the_limit_are_audited_once(
    limited: tuple[FastAPI, str], unused_uid: int
) -> None:
    app, base = limited
    results = as_uid(unused_uid, base, [("victim", WRONG)] * (LIMIT + 20))
    assert [s for s, _ in results].count(429) == 20
    outcomes = [e["outcome"] for e in login_events(app, "victim")]
    assert outcomes == ["denied"] + ["failure"] * LIMIT
    ok, _, bad = app.state.ctx.audit.verify_chain()
    assert ok and bad is None


def _endpoints(sock: socket.socket) -> tuple[Endpoint, Endpoint]:
    local, remote = sock.getsockname(), sock.getpeername()
    return (ip_address(local[0]), local[1]), (ip_address(remote[0]), remote[1])


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_socket_owner_is_found(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with (
        socket.create_server((host, 0), family=family) as server,
        socket.create_connection(server.getsockname()[:2]) as client,
    ):
        local, remote = _endpoints(client)
        assert peer_address(client.getsockname()[:2], client.getpeername()[:2]) == host
        owner = socket_owner(local, remote)
        assert owner is not None and owner.uid == os.geteuid() and owner.inode
        assert socket_owner((local[0], local[1] + 1), remote) is None


@pytest.mark.parametrize("reset", [False, True])
def test_a_closed_client_does_not_pass_for_root(reset: bool) -> None:
    """A client that closes (or resets) before its request is handled: its socket
    no longer has an owner, so it must not count as root's 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        local, remote = client.getsockname(), client.getpeername()
        if reset:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        accepted.close()
        assert peer_address(local, remote) == "loopback:closed"


def _other_local_address() -> str | None:
    """An address of this host that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if ip_address(address).is_loopback else address


@contextmanager
def _connected_as(
    uid: int, code: str, server: socket.socket
) -> Iterator[tuple[socket.socket, Any]]:
    """Run ``code`` (which connects to ``server`` and waits) as ``uid``; the accepted
    socket and the client's address while it runs."""
    other = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                              default_python(), "-c", code])  # fmt: skip
    try:
        server.settimeout(30)
        accepted, client = server.accept()
        with accepted:
            yield accepted, client
    finally:
        other.kill()
        other.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another uid's socket")
def test_a_local_client_is_known_by_its_socket_whatever_its_source_address() -> None:
    """A local process may bind any address of this host as its source and still reach
    127.0.0.1: it must not pass for a remote client (whose address would be kept)."""
    source = _other_local_address()
    if source is None:
        pytest.skip("this host has no address but loopback")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (f"import socket, time; s = socket.create_connection(('127.0.0.1', {port}), "
                f"source_address=({source!r}, 0)); time.sleep(30)")  # fmt: skip
        with _connected_as(61_030, code, server) as (_accepted, client):
            assert client[0] == source  # what the client claims to be
            assert peer_address(client[:2], ("127.0.0.1", port)) == "uid:61030"


def _ipv6_addresses() -> tuple[str | None, tuple[str, int] | None]:
    """A global IPv6 address of this host and a link-local one with its interface
    index (from /proc/net/if_inet6), each None when there is none."""
    global_address, link_local = None, None
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        hexed, index = line.split()[0], int(line.split()[1], 16)
        address = ip_address(bytes.fromhex(hexed))
        if address.is_link_local and link_local is None:
            link_local = (str(address), index)
        elif not address.is_loopback:
            global_address = global_address or str(address)
    return global_address, link_local


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another uid's socket")
def test_a_socket_bound_to_an_interface_is_still_known() -> None:
    """A socket bound to a link-local address is bound to its interface, and the kernel
    finds it only when the lookup names that interface: connecting to another address
    of this host it must not pass for a remote client (Balsam listening on the network)."""
    source, link_local = _ipv6_addresses()
    if source is None or link_local is None:
        pytest.skip("this host has no second IPv6 address and link-local one")
    with socket.create_server(("::", 0), family=socket.AF_INET6) as server:
        port = server.getsockname()[1]
        bound = (link_local[0], 0, 0, link_local[1])  # the source: bound to its interface
        code = ("import socket, time; s = socket.socket(socket.AF_INET6); "
                f"s.bind({bound!r}); s.connect(({source!r}, {port})); time.sleep(30)")  # fmt: skip
        with _connected_as(61_031, code, server) as (accepted, client):
            assert client[0].startswith("fe80:")  # what it claims to be: not loopback
            assert peer_address(client[:2], accepted.getsockname()[:2]) == "uid:61031"
