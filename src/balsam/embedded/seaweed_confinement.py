"""Running weed under its own uid, with files and sockets no other uid can reach.

When Balsam runs as root, workspaces run as other uids on the same host. weed
then runs as a uid of its own (from the host-wide uid registry), so that its
data dir, its ``security.toml`` and its unix sockets are closed to workspace
uids by plain file permissions: every directory weed owns is 0700 and weed
runs with umask 077.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

_UNIX_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; weed appends nothing


def hand_over(data_dir: Path, uid: int) -> None:
    """Make ``data_dir`` and everything in it owned by ``uid`` (group ``uid``),
    and every folder above it traversable, so that weed running as ``uid`` can
    reach it. Also converts a data dir an older release made as root (upgrade
    in place). Symlinks are re-owned themselves, never followed."""
    for path in _walk(data_dir):
        info = path.lstat()
        if info.st_uid != uid or info.st_gid != uid:
            os.chown(path, uid, uid, follow_symlinks=False)
    for parent in data_dir.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:  # traverse only: listing stays closed
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _walk(root: Path) -> list[Path]:
    found = [root]
    for folder, dirs, files in os.walk(root):
        found.extend(Path(folder, name) for name in (*dirs, *files))
    return found


def socket_dir(data_dir: Path) -> Path:
    """A 0700 folder for weed's unix sockets, short enough for ``sun_path``.

    ``<data_dir>/run`` when its socket paths fit; otherwise a fresh private
    folder under the system's temporary directory (never weed's default fixed
    ``/tmp/seaweedfs-*-<port>.sock`` paths, which any local user could take or
    connect to)."""
    preferred = data_dir / "run"
    if len(str(preferred / "filer-65535.sock")) <= _UNIX_SOCKET_PATH_MAX:
        preferred.mkdir(mode=0o700, exist_ok=True)
        preferred.chmod(0o700)
        return preferred
    return Path(tempfile.mkdtemp(prefix="balsam-weed-"))  # mkdtemp makes it 0700


# Run inside a private mount namespace, as root, before weed starts: weed opens
# gRPC unix sockets at fixed /tmp/seaweedfs-<service>-grpc-<port>.sock paths (no
# flag moves them) and dials its own services through them, so a local user who
# created such a path first could stop weed or stand in for one of its services.
# Covering /tmp with weed's own 0700 tmp/ puts every one of them out of reach.
# Paths under /tmp that weed needs (a data dir or binary under /tmp, as in tests)
# are mounted back at their place inside the private /tmp.
# Arguments: <private dir> <path to keep>... -- <command>...
_PRIVATE_TMP_SCRIPT = """set -e
private=$1; shift
i=0
for path in "$@"; do
  [ "$path" = "--" ] && break
  mkdir -p "$private/.keep$i"
  mount --bind "$path" "$private/.keep$i"
  i=$((i+1))
done
mount --rbind "$private" /tmp
umask 022
i=0
while [ "$1" != "--" ]; do
  mkdir -p "$1"
  mount --bind "/tmp/.keep$i" "$1"
  i=$((i+1)); shift
done
shift
umask 077
exec "$@"
"""


def private_tmp_supported() -> bool:
    """Whether this process may make a private mount namespace (root with
    CAP_SYS_ADMIN; containers often lack it)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return False
    probe = [unshare, "--mount", "--propagation", "private", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def confined_command(
    command: list[str], *, private_tmp: Path | None, keep: list[Path], uid: int | None
) -> list[str]:
    """``command`` wrapped to run as ``uid`` (all groups dropped, no new
    privileges) and/or with ``private_tmp`` mounted over /tmp (see above), the
    folders in ``keep`` staying reachable where they are. Needs root for either.
    The process keeps its pid: each wrapper execs the next."""
    if uid is not None:
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                   "--no-new-privs", "--", *command]  # fmt: skip
    if private_tmp is not None:
        tmp = Path("/tmp").resolve()  # noqa: S108 - the folder weed's fixed paths are in
        kept = [str(p) for p in (path.resolve() for path in keep) if p.is_relative_to(tmp)]
        command = ["unshare", "--mount", "--propagation", "private", "--",
                   "/bin/sh", "-c", _PRIVATE_TMP_SCRIPT, "balsam-weed", str(private_tmp),
                   *kept, "--", *command]  # fmt: skip
    return command
