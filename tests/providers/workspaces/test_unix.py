"""The file-system and process side of workspace isolation (local provider as root)."""

from __future__ import annotations

import json
import logging
import os
import select
import stat
import subprocess
import time
from pathlib import Path

import pytest

from balsam.hostuids import system_use
from balsam.providers.workspaces.base import EnvironmentSpec
from balsam.providers.workspaces.environments import LOCK_FILE, EnvironmentBuilder, default_python
from balsam.providers.workspaces.unix import kill_user, processes_of, share_with_workspaces


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


def test_opened_folders_outside_the_data_dir_are_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = tmp_path / "home"
    environments = private / "envs"
    environments.mkdir(parents=True)
    private.chmod(0o700)
    data_dir = private / "data"
    root = data_dir / "workspaces"
    root.mkdir(parents=True, mode=0o700)
    data_dir.chmod(0o700)

    with caplog.at_level(logging.WARNING, logger="balsam.providers.workspaces.unix"):
        share_with_workspaces(root, environments)

    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    named = [m.split(" is now traversable")[0] for m in warned]
    # Each folder once, though both paths pass through it; pytest's own 0700 folders
    # above tmp_path may be opened (and named) too, never the data directory's.
    assert named.count(str(private)) == 1, warned
    assert any(
        m.startswith(f"{private} is now traversable by every user (mode 700 -> 701)")
        for m in warned
    )
    assert all(Path(n) in private.parents or Path(n) == private for n in named), named
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="balsam.providers.workspaces.unix"):
        share_with_workspaces(root, environments)  # nothing changes: nothing said
    assert not caplog.records


def test_the_build_lock_file_is_balsams_alone(tmp_path: Path) -> None:
    # flock needs no write access: a lock file workspace users can open at all is
    # a channel between workspaces. One an earlier release left 0666 is closed too.
    builder = EnvironmentBuilder(tmp_path / "envs")
    spec = EnvironmentSpec("python", ("x==1",))
    builder.path(spec).mkdir(parents=True)
    (builder.path(spec) / LOCK_FILE).write_text(json.dumps({"packages": {"x": "1"}}))
    lock_file = builder.root / f".{spec.name}.lock"
    old_umask = os.umask(0)
    try:
        builder.ensure(spec, lambda _: None)
        assert _mode(lock_file) == 0o600
        lock_file.chmod(0o666)
        builder.ensure(spec, lambda _: None)
    finally:
        os.umask(old_umask)
    assert _mode(lock_file) == 0o600
    assert lock_file.stat().st_uid == os.geteuid()


#: A fork chain: each process forks and exits at once, so no pid lives long enough to
#: be found and killed. Every 100 hops it writes a dot to its stdout: a pipe whose
#: end of file says that no process of the chain is left.
FORK_CHAIN = """
import os
os.setsid()
hops = 0
while True:
    hops += 1
    if hops % 100 == 0:
        os.write(1, b".")
    try:
        if os.fork() > 0:
            os._exit(0)
    except OSError:  # out of processes for a moment: try again
        pass
"""


def start_fork_chain(uid: int) -> int:
    """Start :data:`FORK_CHAIN` as ``uid``; the read end of its pipe, once it runs."""
    read, write = os.pipe()
    subprocess.run(
        [default_python(), "-c", FORK_CHAIN],
        user=uid,
        group=uid,
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        stdout=write,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=10,
    )  # returns at the first hop: its child lives on, and so on
    os.close(write)
    assert os.read(read, 1) == b".", "the fork chain does not run"
    return read


def chain_ended(read: int, timeout: float) -> bool:
    """Whether every process of the chain has exited (end of file) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read], [], [], 0.1)
        if ready and os.read(read, 65536) == b"":
            return True
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another uid")
def test_kill_user_stops_a_fork_chain() -> None:
    uid = _spare_uid()
    read = start_fork_chain(uid)
    try:
        time.sleep(0.2)
        assert kill_user(uid) == []
        assert chain_ended(read, timeout=2)
        assert processes_of(uid) == []
    finally:
        kill_user(uid, timeout=5)
        os.close(read)


def test_kill_user_refuses_root_and_balsams_own_uid() -> None:
    for uid in (0, os.getuid()):
        with pytest.raises(ValueError):
            kill_user(uid)


def _spare_uid() -> int:
    """A uid nobody on this host uses (no passwd entry, no process)."""
    for uid in range(299_000, 299_100):
        if system_use(uid) is None and not processes_of(uid):
            return uid
    raise AssertionError("no spare uid")
