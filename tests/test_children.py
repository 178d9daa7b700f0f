"""Children started through :mod:`balsam.children` die with a parent killed by
SIGKILL; children started without it (the control cases) live on."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

import balsam
from balsam import children
from balsam.children import dying_with_parent, group_dying_with_parent

Wrapper = Callable[[Sequence[str]], list[str]]

# A short-lived parent: starts the command (wrapped by the named helper, or not),
# prints its pid and the pid the command prints, then waits to be killed.
_PARENT = """
import subprocess, sys, time
from balsam import children
wrap = getattr(children, sys.argv[1]) if sys.argv[1] else list
child = subprocess.Popen(wrap(sys.argv[2:]), stdout=subprocess.PIPE, start_new_session=True)
print(child.pid, child.stdout.readline().decode().strip(), flush=True)
time.sleep(300)
"""
# Prints its own pid, then sleeps: one process.
_SLEEPER = ["sh", "-c", "echo $$; exec sleep 300"]
# Prints the pid of a sleeping child it starts: a process with a helper of its own.
_WITH_HELPER = ["sh", "-c", "sleep 300 & echo $!; wait"]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _gone_within(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Pids to SIGKILL after the test, whatever it found."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _kill_parent_of(helper: str, command: list[str], orphans: list[int]) -> tuple[int, int]:
    """Start ``command`` from a parent process through ``helper`` ("" = none),
    SIGKILL that parent, and return (the child's pid, the pid the command printed)."""
    env = {**os.environ, "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1])}
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, helper, *command], env=env, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    child, printed = (int(pid) for pid in parent.stdout.readline().split())
    orphans += [child, printed]
    assert _alive(child) and _alive(printed)
    parent.kill()
    parent.wait()
    return child, printed


def test_a_child_dies_with_its_killed_parent(orphans: list[int]) -> None:
    child, printed = _kill_parent_of("dying_with_parent", _SLEEPER, orphans)

    assert child == printed  # the wrapper execs the command: same pid
    assert _gone_within([child], timeout=5)


def test_without_the_wrapper_a_child_outlives_its_killed_parent(orphans: list[int]) -> None:
    child, _ = _kill_parent_of("", _SLEEPER, orphans)

    assert not _gone_within([child], timeout=1)


def test_a_child_and_its_helpers_die_with_its_killed_parent(orphans: list[int]) -> None:
    child, helper = _kill_parent_of("group_dying_with_parent", _WITH_HELPER, orphans)

    assert _gone_within([child, helper], timeout=5)


def test_the_single_process_wrapper_leaves_a_childs_helpers_behind(orphans: list[int]) -> None:
    child, helper = _kill_parent_of("dying_with_parent", _WITH_HELPER, orphans)

    assert _gone_within([child], timeout=5)
    assert not _gone_within([helper], timeout=1)  # why group_dying_with_parent exists


def test_the_group_wrapper_passes_input_output_and_exit_status() -> None:
    done = subprocess.run(
        group_dying_with_parent(["sh", "-c", "cat; echo oops >&2; exit 3"]),
        input=b"hello\n",
        capture_output=True,
        start_new_session=True,
        timeout=30,
        check=False,
    )

    assert (done.returncode, done.stdout, done.stderr) == (3, b"hello\n", b"oops\n")


@pytest.mark.parametrize("new_session", [True, False])
def test_the_group_wrapper_leads_only_a_group_of_its_own(new_session: bool) -> None:
    """Outside a new session it must not kill the caller's group: it becomes the command."""
    process = subprocess.Popen(
        group_dying_with_parent(["sh", "-c", "echo $$"]),
        stdout=subprocess.PIPE,
        start_new_session=new_session,
    )
    out, _ = process.communicate(timeout=30)

    assert (int(out) == process.pid) is not new_session


def test_without_setpriv_commands_run_unwrapped_and_one_warning_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(children.shutil, "which", lambda _name: None)
    children._setpriv.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="balsam.children"):
            wrapped = [dying_with_parent(["git", "status"]), group_dying_with_parent(["uv"])]
    finally:
        children._setpriv.cache_clear()

    assert wrapped == [["git", "status"], ["uv"]]
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "setpriv" in caplog.records[0].message


def test_every_wrapper_uses_setpriv_here() -> None:
    """The machines Balsam supports (Debian) have util-linux's setpriv."""
    setpriv = children._setpriv()
    assert setpriv is not None
    assert dying_with_parent(["true"])[:4] == [setpriv, "--pdeathsig", "KILL", "--"]
    assert group_dying_with_parent(["true"])[:3] == [setpriv, "--pdeathsig", "TERM"]
