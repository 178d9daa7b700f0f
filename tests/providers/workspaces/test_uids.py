"""Workspace uids as root: claimed in the host-wide registry, recorded per workspace,
checked again at every start, and adopted from earlier releases' data directories."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from balsam.hostuids import HostUidRegistry
from balsam.providers.workspaces.base import WorkspaceStartError
from balsam.providers.workspaces.environments import EnvironmentBuilder
from balsam.providers.workspaces.local import LocalWorkspaceProvider

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="workspace uids exist only as root")


@pytest.fixture
def base() -> int:
    """A base far from this machine's users and other test runs."""
    return 1_500_000_000 + secrets.randbelow(1000) * 10_000


@pytest.fixture
def registry(tmp_path: Path, base: int) -> HostUidRegistry:
    return HostUidRegistry(tmp_path / "registry", base=base)


def _provider(data_dir: Path, registry: HostUidRegistry) -> LocalWorkspaceProvider:
    return LocalWorkspaceProvider(
        data_dir / "workspaces",
        EnvironmentBuilder(data_dir / "env"),
        uid_base=registry.base,
        uid_registry=registry,
    )


def _old_release(data_dir: Path, uids: dict[str, int]) -> None:
    """A workspaces folder as the previous release left it: a ``.next-uid`` counter
    and a ``uid`` file and home per workspace."""
    root = data_dir / "workspaces"
    for workspace_id, uid in uids.items():
        (root / workspace_id / "home").mkdir(parents=True)
        os.chown(root / workspace_id / "home", uid, uid)
        (root / workspace_id / "uid").write_text(str(uid))
    (root / ".next-uid").write_text(str(max(uids.values()) + 1))


@pytest.fixture
def sleeper() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _sleep_as(uid: int, home: Path, started: list[subprocess.Popen[bytes]]) -> int:
    proc = subprocess.Popen(
        ["/bin/sleep", "60"], user=uid, group=uid, extra_groups=[], env={"HOME": str(home)}
    )
    started.append(proc)
    return proc.pid


def test_two_data_directories_get_disjoint_uids(tmp_path: Path, registry: HostUidRegistry) -> None:
    # The previous release counted per data directory: both got uid_base.
    one = _provider(tmp_path / "one", registry)
    two = _provider(tmp_path / "two", registry)
    for workspace_id in ("w1", "w2"):
        (one.root / workspace_id).mkdir()
        (two.root / workspace_id).mkdir()
    uids = [p._uid(w) for p in (one, two) for w in ("w1", "w2")]
    assert len(set(uids)) == 4
    assert one._uid("w1") == uids[0]  # stable across starts
    assert (one.root / "w1" / "uid").read_text() == str(uids[0])
    assert registry.owner_of(uids[0]) == f"{tmp_path / 'one'}#workspace:w1"


def test_earlier_releases_uid_files_are_adopted(
    tmp_path: Path, registry: HostUidRegistry, base: int
) -> None:
    _old_release(tmp_path / "data", {"gammal": base + 5})
    provider = _provider(tmp_path / "data", registry)
    assert registry.owner_of(base + 5) == f"{tmp_path / 'data'}#workspace:gammal"
    assert provider._uid("gammal") == base + 5


def test_a_fresh_uid_skips_uids_owning_files_in_the_data_directory(
    tmp_path: Path, registry: HostUidRegistry, base: int
) -> None:
    provider = _provider(tmp_path / "data", registry)
    (provider.root / "orphan" / "home").mkdir(parents=True)
    os.chown(provider.root / "orphan" / "home", base, base)  # no uid file, no entry
    (provider.root / "ny").mkdir()
    assert provider._uid("ny") == base + 1


def test_two_earlier_installations_that_shared_a_uid(
    tmp_path: Path, registry: HostUidRegistry, base: int
) -> None:
    """Both previous-release data directories handed ``base`` out: the first to
    come up keeps it, the other's workspace refuses to start, with a reason."""
    _old_release(tmp_path / "one", {"ws": base})
    _old_release(tmp_path / "two", {"ws": base})
    one = _provider(tmp_path / "one", registry)
    two = _provider(tmp_path / "two", registry)
    assert one._uid("ws") == base
    with pytest.raises(WorkspaceStartError, match="in use by another owner"):
        two._uid("ws")


def test_a_uid_the_system_names_now_is_refused(tmp_path: Path, registry: HostUidRegistry) -> None:
    """Registered before an administrator gave the number to a system user."""
    nobody = pwd.getpwnam("nobody").pw_uid
    provider = _provider(tmp_path / "data", registry)
    (provider.root / "ws").mkdir()
    (provider.root / "ws" / "uid").write_text(str(nobody))
    assert registry.owner_of(nobody) is None  # (and the registry's folder exists)
    (registry.root / "uids" / str(nobody)).write_text(provider.uids.owner("ws") + "\n")
    with pytest.raises(WorkspaceStartError, match="system user 'nobody'"):
        provider._uid("ws")


def test_a_foreign_process_under_the_uid_blocks_the_start(
    tmp_path: Path, registry: HostUidRegistry, sleeper: list[subprocess.Popen[bytes]]
) -> None:
    provider = _provider(tmp_path / "data", registry)
    (provider.root / "ws").mkdir()
    uid = provider._uid("ws")
    assert uid is not None
    _sleep_as(uid, provider.root / "ws" / "home", sleeper)  # one of its own: fine
    assert provider._uid("ws") == uid
    pid = _sleep_as(uid, tmp_path / "elsewhere", sleeper)
    with pytest.raises(WorkspaceStartError, match=f"pids {pid}"):
        provider._uid("ws")


def test_stop_kills_only_under_a_uid_still_the_workspaces(
    tmp_path: Path, registry: HostUidRegistry, base: int, sleeper: list[subprocess.Popen[bytes]]
) -> None:
    """A uid file naming someone else's uid (an earlier release's collision) must not
    make stopping this workspace kill the other's processes."""
    other = HostUidRegistry(registry.root, base=base).claim("/elsewhere#workspace:theirs")
    provider = _provider(tmp_path / "data", registry)
    (provider.root / "ws").mkdir()
    (provider.root / "ws" / "uid").write_text(str(other))
    _sleep_as(other, tmp_path, sleeper)
    provider.stop("ws")
    assert sleeper[0].poll() is None
    (provider.root / "mine").mkdir()
    own = provider._uid("mine")
    assert own is not None
    _sleep_as(own, provider.root / "mine" / "home", sleeper)
    provider.stop("mine")
    assert sleeper[1].wait(timeout=10) is not None


def test_an_unusable_registry_refuses_starts_not_balsam(tmp_path: Path, base: int) -> None:
    """A registry folder someone else owns could hand one uid to two owners."""
    folder = tmp_path / "registry"
    folder.mkdir(mode=0o700)
    os.chown(folder, base, base)
    _old_release(tmp_path / "data", {"gammal": base + 5})
    provider = _provider(tmp_path / "data", HostUidRegistry(folder, base=base))  # no raise
    (provider.root / "ny").mkdir()
    with pytest.raises(WorkspaceStartError, match="must be a folder owned by"):
        provider._uid("ny")
    provider.stop("gammal")  # kills nothing it cannot prove is its own; no raise
