"""The host-wide uid registry (as root: the folder must be root's)."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from balsam import hostuids
from balsam.hostuids import HostUidRegistry, UidRegistryError

#: Far above anything this machine uses, so the tests' own claims are predictable.
BASE = 1_900_000_000


def _claim_many(root: str, prefix: str, count: int, out: multiprocessing.Queue[list[int]]) -> None:
    registry = HostUidRegistry(Path(root), base=BASE)
    out.put([registry.claim(f"{prefix}#{n}") for n in range(count)])


def test_claims_are_stable_and_verifiable(tmp_path: Path) -> None:
    registry = HostUidRegistry(tmp_path / "uids", base=BASE)
    first = registry.claim("/data/a#workspace:one")
    second = registry.claim("/data/a#workspace:two")
    assert first != second
    assert registry.claim("/data/a#workspace:one") == first
    assert HostUidRegistry(tmp_path / "uids", base=BASE).claim("/data/a#workspace:one") == first
    assert registry.verify(first, "/data/a#workspace:one")
    assert not registry.verify(first, "/data/a#workspace:two")
    assert not registry.verify(second + 1, "/data/a#workspace:two")
    assert stat.S_IMODE((tmp_path / "uids").stat().st_mode) == 0o700


def test_concurrent_claims_from_two_processes_are_distinct(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # nothing shared but the folder
    out: multiprocessing.Queue[list[int]] = context.Queue()
    workers = [
        context.Process(target=_claim_many, args=(str(tmp_path), name, 40, out))
        for name in ("/data/a", "/data/b")
    ]
    for worker in workers:
        worker.start()
    claimed = out.get(timeout=60) + out.get(timeout=60)
    for worker in workers:
        worker.join(timeout=60)
    assert len(claimed) == 80
    assert len(set(claimed)) == 80


def test_uid_of_a_running_process_is_skipped(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process under another uid")
    sleeper = subprocess.Popen(["/bin/sleep", "60"], user=BASE, group=BASE, extra_groups=[])
    try:
        assert sleeper.pid in hostuids.processes_of(BASE)
        uid = HostUidRegistry(tmp_path, base=BASE).claim("/data/a#workspace:one")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert uid == BASE + 1


def test_uids_named_by_passwd_or_group_are_skipped(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    uid = HostUidRegistry(tmp_path, base=nobody).claim("/data/a#workspace:one")
    assert uid > nobody
    assert hostuids.system_use(nobody) is not None
    assert hostuids.system_use(uid) is None


def test_subordinate_ranges_are_skipped_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text(f"someone:{BASE}:65536\n")
    monkeypatch.setattr(hostuids, "_SUBID_FILES", (subuid,))
    uid = HostUidRegistry(tmp_path / "uids", base=BASE).claim("/data/a#workspace:one")
    assert uid == BASE + 65536


def test_avoided_uids_are_skipped(tmp_path: Path) -> None:
    registry = HostUidRegistry(tmp_path, base=BASE)
    assert registry.claim("/data/a#x", avoid={BASE, BASE + 1}) == BASE + 2


def test_adopt_takes_a_free_uid_and_refuses_a_held_one(tmp_path: Path) -> None:
    registry = HostUidRegistry(tmp_path, base=BASE)
    assert registry.adopt(BASE + 7, "/data/a#workspace:old")
    assert registry.adopt(BASE + 7, "/data/a#workspace:old")  # idempotent
    assert registry.claim("/data/a#workspace:old") == BASE + 7
    assert not registry.adopt(BASE + 7, "/data/b#workspace:old")
    assert registry.owner_of(BASE + 7) == "/data/a#workspace:old"
    assert not registry.adopt(pwd.getpwnam("nobody").pw_uid, "/data/c#workspace:x")


def test_release_frees_the_uid(tmp_path: Path) -> None:
    registry = HostUidRegistry(tmp_path, base=BASE)
    uid = registry.claim("/data/a#one")
    registry.release("/data/a#one")
    registry.release("/data/a#one")  # a no-op the second time
    assert not registry.verify(uid, "/data/a#one")
    assert registry.claim("/data/b#two") == uid


def test_a_lost_index_is_rebuilt_from_the_entries(tmp_path: Path) -> None:
    registry = HostUidRegistry(tmp_path, base=BASE)
    uid = registry.claim("/data/a#one")
    for index in (tmp_path / "owners").iterdir():
        index.unlink()
    assert registry.claim("/data/a#one") == uid


def test_a_folder_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    folder = tmp_path / "uids"
    folder.mkdir(mode=0o700)
    os.chown(folder, BASE, BASE)
    with pytest.raises(UidRegistryError, match="owned by"):
        HostUidRegistry(folder, base=BASE).claim("/data/a#one")


def test_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "uids").symlink_to(tmp_path / "real")
    with pytest.raises(UidRegistryError):
        HostUidRegistry(tmp_path / "uids", base=BASE).claim("/data/a#one")
