"""Private runtime folders of local workspaces, and connections to their sockets.

A local workspace has no network surface: its JupyterLab server listens on a
unix socket and its kernels talk to the server over IPC (ZeroMQ on unix
sockets), all in one runtime folder per workspace::

    <base>/                 0711, Balsam's (root's): traversable, not listable
    <base>/<key>/           0700, the workspace's user: JUPYTER_RUNTIME_DIR
    <base>/<key>/jupyter.sock            the server
    <base>/<key>/kernel-<id>-ipc-<n>     each kernel's five channels

Paths of unix sockets are limited to 107 bytes, and data directories can be
long, so the base is short (``/run/balsam`` as root) and ``<key>`` is a 16-hex
hash of the workspace's folder: kernel sockets stay under 90 bytes. Only root
can create entries in ``/run``, so no other user can plant a folder there in
advance; elsewhere (not root) the base is checked to be our own and private.

The workspace's user owns its runtime folder and could replace its socket with
a link to another socket, e.g. one of root's: every client therefore checks the
uid of the process listening on the socket (``SO_PEERCRED``) before it sends a
byte (:func:`connect`, :func:`connect_async`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import stat
import struct
import tempfile
from pathlib import Path

#: Name of the server's socket inside a workspace's runtime folder.
SERVER_SOCKET = "jupyter.sock"
#: Longest unix socket path Linux accepts (``sun_path`` is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107
#: Longest kernel socket name jupyter_client writes: ``/kernel-<uuid>-ipc-<n>``.
_KERNEL_SOCKET_NAME = len("/kernel-00000000-0000-0000-0000-000000000000-ipc-99999")


class UnexpectedPeer(ConnectionRefusedError):
    """The process listening on a workspace's socket is not the workspace's."""


def default_base() -> Path:
    """``/run/balsam`` as root; otherwise ``$XDG_RUNTIME_DIR/balsam`` or
    ``<tmp>/balsam-<uid>`` (checked by :func:`ensure_base`)."""
    if os.geteuid() == 0:
        return Path("/run/balsam")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "balsam"
    return Path(tempfile.gettempdir()) / f"balsam-{os.geteuid()}"


def ensure_base(base: Path) -> Path:
    """Create ``base`` (0711) or accept it only if it is a real folder of ours that
    no one else may write: a folder another user made in advance could let them
    swap a workspace's socket. Raises ``PermissionError`` otherwise."""
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o711, parents=True)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"{base} is not a folder of Balsam's user")
    if info.st_mode & 0o022:
        raise PermissionError(f"{base} may be written by other users")
    base.chmod(0o711)
    longest = len(str(base)) + 17 + _KERNEL_SOCKET_NAME
    if longest > MAX_SOCKET_PATH:
        raise ValueError(
            f"{base} is too long for unix sockets ({longest} > "
            f"{MAX_SOCKET_PATH} bytes); choose a shorter runtime folder"
        )
    return base


def folder_for(base: Path, workspace_dir: Path) -> Path:
    """The runtime folder of the workspace whose Balsam folder is ``workspace_dir``
    (distinct per data directory, so two Balsams on one host never share one)."""
    key = hashlib.sha256(str(workspace_dir.resolve()).encode()).hexdigest()[:16]
    return base / key


def recreate(folder: Path, uid: int | None) -> None:
    """An empty runtime folder (0700) for ``uid`` (None: Balsam's own user):
    nothing a previous server, or the workspace's user, left there survives."""
    remove(folder)
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    if uid is not None:
        os.chown(folder, uid, uid)


def remove(folder: Path) -> None:
    """Remove a runtime folder (its sockets and connection files). Idempotent."""
    # shutil.rmtree does not follow links the workspace's user may have placed.
    shutil.rmtree(folder, ignore_errors=True)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _check(sock: socket.socket, path: str, uid: int | None) -> socket.socket:
    expected = os.geteuid() if uid is None else uid
    if peer_uid(sock) != expected:
        sock.close()
        raise UnexpectedPeer(f"{path} is not served by uid {expected}")
    return sock


def connect(path: str, uid: int | None, timeout: float) -> socket.socket:
    """A connected (blocking) unix socket to ``path`` whose listener runs as
    ``uid`` (None: as Balsam); raises ``OSError`` (``UnexpectedPeer``) otherwise."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return _check(sock, path, uid)


async def connect_async(path: str, uid: int | None) -> socket.socket:
    """As :func:`connect`, without blocking the event loop; the socket is left
    non-blocking for ``loop.create_unix_connection(sock=...)``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, path)
    except BaseException:
        sock.close()
        raise
    return _check(sock, path, uid)
