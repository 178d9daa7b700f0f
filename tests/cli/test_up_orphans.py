"""`balsam up` killed with ``kill -9``: its weed dies with it, and the next `balsam up`
on the same data dir starts at once; a weed that survived anyway (started without
the parent-death signal, as an older Balsam did) is stopped by the next start. A git
fetch blocked on a remote that never answers dies with it too, helpers included."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import balsam
from tests.cli.test_cli import (  # noqa: F401 - up_env: a fixture
    BalsamUp,
    balsam_command,
    seaweed_http_ports,
    up_env,
    weed_pids,
)
from tests.fixtures.server import free_port

# `balsam up` whose weed has no parent-death signal: the behaviour before this fix.
_UP_WITHOUT_PDEATHSIG = (
    "import sys, balsam.embedded.seaweedfs as weed\n"
    "weed.dying_with_parent = lambda command: command\n"
    "from balsam.cli import main\n"
    "sys.argv = ['balsam', *sys.argv[1:]]\n"
    "main()\n"
)


def _wait_until_gone(data_dir: Path, timeout: float) -> float:
    """Seconds until no weed of ``data_dir`` is left; fails after ``timeout``."""
    started = time.monotonic()
    while weed_pids(data_dir / "storage"):
        assert time.monotonic() - started < timeout, "weed outlived `balsam up`"
        time.sleep(0.05)
    return time.monotonic() - started


def _env(up_env: dict[str, str], tmp_path: Path) -> dict[str, str]:  # noqa: F811
    return {
        **up_env,
        "BALSAM_DATABASE_URL": f"sqlite:///{tmp_path / 'balsam.db'}",
        "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1]),
        # weed's admin port defaults to 23646: another `balsam up` may be running
        "BALSAM_STORAGE__ADMIN_PORT": str(seaweed_http_ports(1)[0]),
    }


def test_weed_dies_with_a_killed_balsam_up_and_the_next_starts_at_once(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    env, data_dir = _env(up_env, tmp_path), tmp_path / "data"
    first = BalsamUp(env, data_dir, free_port(), "first")
    second = None
    try:
        first.wait_until_serving()
        assert weed_pids(data_dir / "storage")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        assert _wait_until_gone(data_dir, timeout=5) < 5

        started = time.monotonic()
        second = BalsamUp(env, data_dir, free_port(), "second")
        second.wait_until_serving(timeout=60)
        assert time.monotonic() - started < 30
        assert "already in use" not in second.stderr
        assert "stale weed" not in second.stderr  # the kernel had stopped it already
        assert second.terminate() == 0
        _wait_until_gone(data_dir, timeout=5)
    finally:
        for server in (first, second):
            if server is not None:
                server.kill()
        for pid in weed_pids(data_dir / "storage"):
            os.kill(pid, signal.SIGKILL)


def test_a_weed_left_by_a_killed_balsam_up_is_stopped_by_the_next(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    env, data_dir = _env(up_env, tmp_path), tmp_path / "data"
    out = (tmp_path / "old.out").open("wb")
    port = free_port()
    old = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _UP_WITHOUT_PDEATHSIG,
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    new = None
    try:
        _Attached(old, port, tmp_path / "old.out").wait_until_serving()
        old.send_signal(signal.SIGKILL)
        old.wait(timeout=10)
        time.sleep(1)
        orphans = weed_pids(data_dir / "storage")
        assert orphans, "without the parent-death signal weed outlives balsam up"

        new = BalsamUp(env, data_dir, free_port(), "new")
        new.wait_until_serving(timeout=60)
        assert "stopped a stale weed" in new.stderr
        assert not set(orphans) & set(weed_pids(data_dir / "storage"))
        assert new.terminate() == 0
    finally:
        out.close()
        if old.poll() is None:
            old.kill()
        if new is not None:
            new.kill()
        for pid in weed_pids(data_dir / "storage"):
            os.kill(pid, signal.SIGKILL)


def test_a_blocked_library_fetch_dies_with_a_killed_balsam_up(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    env, data_dir = _env(up_env, tmp_path), tmp_path / "data"
    with _silent_remote() as url:
        env["BALSAM_SOURCE_PRIVATE_HOSTS"] = '["127.0.0.1"]'
        subprocess.run([*balsam_command(), "library", "add", "blocked", url, "--no-sync",
                        "--data-dir", str(data_dir)], env=env, check=True, timeout=60,
                       capture_output=True)  # fmt: skip
        up = BalsamUp(env, data_dir, free_port(), "up")  # syncs the new library at start
        try:
            up.wait_until_serving()
            _wait_for_fetch(url, timeout=60)
            up.process.send_signal(signal.SIGKILL)
            up.process.wait(timeout=10)
            assert _gone_within(url, timeout=5), _processes_naming(url)
        finally:
            up.kill()
            for pid in [*_processes_naming(url), *weed_pids(data_dir / "storage")]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _silent_remote() -> Iterator[str]:
    """The URL of a git remote that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener was closed
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/library.git"
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


def _processes_naming(url: str) -> dict[int, str]:
    """Live processes whose command line holds ``url`` (git fetch and git-remote-http)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if url in cmdline and state not in ("Z", "X"):
            found[int(entry.name)] = cmdline
    return found


def _wait_for_fetch(url: str, timeout: float) -> None:
    """Until git's http helper is waiting on the remote."""
    deadline = time.monotonic() + timeout
    while not any("remote-http" in line for line in _processes_naming(url).values()):
        assert time.monotonic() < deadline, "balsam up did not fetch the library"
        time.sleep(0.1)


def _gone_within(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _processes_naming(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class _Attached(BalsamUp):
    """A `balsam up` process started otherwise, for ``wait_until_serving``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, output: Path) -> None:
        self.process, self.url = process, f"http://127.0.0.1:{port}"
        self.stdout_path = self.stderr_path = output
