"""`balsam up` killed with ``kill -9``: its weed dies with it, and the next `balsam up`
on the same data dir starts at once; a weed that survived anyway (started without
the parent-death signal, as an older Balsam did) is stopped by the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import balsam
from tests.cli.test_cli import BalsamUp, seaweed_http_ports, up_env, weed_pids  # noqa: F401 - up_env: a fixture
from tests.fixtures.server import free_port

# `balsam up` whose weed has no parent-death signal: the behaviour before this fix.
_UP_WITHOUT_PDEATHSIG = (
    "import sys, balsam.embedded.seaweedfs as weed\n"
    "weed._dies_with_parent = lambda command: command\n"
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


class _Attached(BalsamUp):
    """A `balsam up` process started otherwise, for ``wait_until_serving``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, output: Path) -> None:
        self.process, self.url = process, f"http://127.0.0.1:{port}"
        self.stdout_path = self.stderr_path = output
