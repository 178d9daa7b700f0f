"""Taking ports back from workspaces (:mod:`balsam.ports`) with real sockets and
real processes under a uid of their own (the suite runs as root)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from balsam.ports import bindable, holders, listeners, reclaim
from tests.fixtures.server import free_port

AS_ROOT = os.geteuid() == 0

#: Listens on the port, and listens again whenever it can (a squatter's loop).
SQUATTER = """
import socket, sys, time
port = int(sys.argv[1])
while True:
    try:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.listen(8)
        print("listening", flush=True)
        while True:
            c, _ = s.accept(); c.recv(65536)
            c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nnot Balsam"); c.close()
    except OSError:
        time.sleep(0.05)
"""


@contextmanager
def squatter(port: int, uid: int, *, wait: bool = True) -> Iterator[subprocess.Popen[str]]:
    """A process of ``uid`` that listens on ``port`` as soon as it can (``wait``:
    return once it does)."""
    process = subprocess.Popen(
        ["/usr/bin/python3", "-c", SQUATTER, str(port)], user=uid, group=uid, extra_groups=[],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert not wait or process.stdout.readline().strip() == "listening"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_listener_and_its_process_are_found() -> None:
    with socket.socket() as sock, socket.socket(socket.AF_INET6) as six:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = listeners([port])
        assert [(e.port, e.uid) for e in found] == [(port, os.geteuid())]
        assert holders([found[0].inode]) == {found[0].inode: [os.getpid()]}
        six.bind(("::1", 0))
        six.listen()
        assert listeners([six.getsockname()[1]])  # IPv6 too
    assert listeners([port]) == []


@pytest.mark.skipif(not AS_ROOT, reason="workspaces have uids of their own only as root")
def test_a_workspace_listener_is_killed_and_the_port_comes_free() -> None:
    uid, port = 470_000 + secrets.randbelow(10_000), free_port()
    with squatter(port, uid) as process:
        taken = reclaim([port], lambda found: found == uid, what="a test")
        assert [e.uid for e in taken] == [uid]
        assert process.wait(timeout=5) == -9
        assert listeners([port]) == []
        with socket.socket() as sock:  # free for its owner
            sock.bind(("127.0.0.1", port))


@pytest.mark.skipif(not AS_ROOT, reason="workspaces have uids of their own only as root")
def test_another_users_listener_is_left_alone() -> None:
    uid, port = 480_000 + secrets.randbelow(10_000), free_port()
    with squatter(port, uid) as process:
        assert reclaim([port], lambda found: False, what="a test") == []
        time.sleep(0.2)
        assert process.poll() is None and listeners([port])


HIDDEN = """
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)  # nobody may bind it again
print("bound", flush=True)
time.sleep(300)
"""


def _hidden_socket(port: int, uid: int) -> subprocess.Popen[str]:
    """A process of ``uid`` holding ``port`` bound, not listening (returns once it does)."""
    process = subprocess.Popen(
        ["/usr/bin/python3", "-c", HIDDEN, str(port)], user=uid, group=uid, extra_groups=[],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "bound"
    return process


@pytest.mark.skipif(not AS_ROOT, reason="workspaces have uids of their own only as root")
def test_a_bound_socket_that_does_not_listen_is_taken_back_too() -> None:
    """In no table, yet it kept weed (and balsam up) from starting for as long as a
    review's kernel held it."""
    uid, port = 490_000 + secrets.randbelow(10_000), free_port()
    process = _hidden_socket(port, uid)
    try:
        assert listeners([port]) == [] and not bindable(port)
        assert reclaim([port], lambda found: found == uid, what="a test") == []
        assert process.wait(timeout=5) == -9
        assert bindable(port)
    finally:
        process.kill()
        process.wait()


@pytest.mark.skipif(not AS_ROOT, reason="workspaces have uids of their own only as root")
def test_a_hidden_socket_of_another_user_is_left_alone() -> None:
    uid, port = 500_000 + secrets.randbelow(10_000), free_port()
    process = _hidden_socket(port, uid)
    try:
        reclaim([port], lambda found: False, what="a test", timeout=0.5)
        assert process.poll() is None and not bindable(port)
    finally:
        process.kill()
        process.wait()
