"""Attacks from inside a real workspace kernel, as a user with a notebook would try them.

Alice has a workspace on her project; Bob has a project with objects in its
bucket and a workspace of his own with a running kernel. From alice's kernel
(its own uid, Balsam running as root) each test tries one route to Bob's data,
Bob's notebooks or the platform, with tools a user could bring (a copy of the
``weed`` binary in her home, Python's sockets, ``zmq`` and ``boto3``), and with
the storage server's ports as literals (she could scan for them). Each test
fails if its route opens again; the last one checks that Bob's objects are
intact and that alice's own key still works on her bucket only.

Every call made inside the kernel is bounded in time; what the kernel got is
part of every assertion message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import update

from balsam.context import AppContext
from balsam.db.models import Project
from balsam.domain.data.quotas import enforce_quotas
from balsam.embedded.seaweedfs import find_weed_binary
from tests.fixtures.app import TestUser, _make_user
from tests.fixtures.seaweed import SeaweedEndpoint
from tests.fixtures.workspaces import Kernel, wait_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspaces run under their own uid only as root"
)

#: What every HTTP-ish refusal may look like: nothing listens, or nothing is served.
REFUSED = {"ConnectionRefusedError", 401, 403, 404}
#: How long an identity an attack may have created gets to start working.
PROPAGATION_S = 3.0

#: Tools defined once in alice's kernel. Every network or process call has a timeout.
KIT = r'''
import json, os, socket, ssl, struct, subprocess, threading, time, urllib.error, urllib.request
_T = 10
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def _run(argv, stdin="", timeout=25):
    try:
        done = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=timeout,
                              cwd=os.path.expanduser("~"))
        return {"rc": done.returncode,
                "out": (done.stdout + done.stderr).decode(errors="replace")[-6000:]}
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return {"rc": "timeout", "out": out.decode(errors="replace")[-6000:]}

def _weed(args, stdin=""):
    return _run([ATTACK["weed"], *args], stdin, timeout=10)

def _weed_shell(commands):
    return _weed(["shell", "-master=127.0.0.1:%(master)d.%(master_grpc)d" % ATTACK["ports"],
                  "-filer=127.0.0.1:%(filer)d.%(filer_grpc)d" % ATTACK["ports"]], commands)

def _filer_copy(name, content, folder):
    path = os.path.join(os.path.expanduser("~"), name)
    with open(path, "w") as f:
        f.write(content)
    url = "http://127.0.0.1:%(filer)d.%(filer_grpc)d" % ATTACK["ports"] + folder
    return _weed(["filer.copy", path, url])

def _http(method, url):
    try:
        with _OPENER.open(urllib.request.Request(url, method=method), timeout=_T) as r:
            return {"status": r.status, "body": r.read(4000).decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read(4000).decode(errors="replace")}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"status": type(reason).__name__, "body": str(reason)}

def _raw_http(target, request):
    family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(_T)
        try:
            s.connect(target if isinstance(target, str) else tuple(target))
            s.sendall(request.encode())
            return s.recv(4000).decode(errors="replace")[:300] or "EOF"
        except OSError as exc:
            return type(exc).__name__

def _unix_connect(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(_T)
        try:
            s.connect(path)
            return "connected"
        except OSError as exc:
            return type(exc).__name__

def _try_read(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        return "READ"
    except PermissionError:
        return "denied"
    except OSError as exc:
        return type(exc).__name__

def _secrets_in_proc(wanted):
    """Which of ``wanted`` appear in any process's command line or environment
    this uid can read, and where."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for name in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (pid, name), "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            for label, value in wanted.items():
                if value in text:
                    found.setdefault(label, []).append("/proc/%s/%s" % (pid, name))
    return found

def _pb(number, payload):
    def varint(n):
        out = bytearray()
        while True:
            low, n = n & 0x7F, n >> 7
            out.append(low | (0x80 if n else 0))
            if not n:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload

def _identity(name, access_key, secret_key):
    credential = _pb(1, access_key.encode()) + _pb(2, secret_key.encode())
    return _pb(1, name.encode()) + _pb(2, credential) + _pb(3, b"Admin")

def _frame(kind, flags, stream, payload):
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
            + struct.pack(">I", stream) + payload)

_FRAMES = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY",
           8: "WINDOW_UPDATE"}

def _grpc(port, path, message, tls):
    """One unary gRPC call over raw HTTP/2 (no grpc library in the workspace), in
    plaintext or over TLS without a client certificate: the frames the server sent."""
    def header(name, value):  # HPACK literal without indexing, no Huffman
        return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
    headers = b"".join(header(k, v) for k, v in [
        (":method", "POST"), (":scheme", "https" if tls else "http"), (":path", path),
        (":authority", "localhost:%d" % port), ("content-type", "application/grpc"),
        ("te", "trailers")])
    body = b"\x00" + struct.pack(">I", len(message)) + message
    got = []
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=_T)
    except OSError as exc:
        return [type(exc).__name__]
    try:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"")
                     + _frame(1, 4, 1, headers) + _frame(0, 1, 1, body))
        buffer = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return got + ["EOF"]
            buffer += data
            while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
                length, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
                buffer = buffer[9 + length:]
                end = "+END" if kind < 2 and flags & 1 else ""
                got.append(_FRAMES.get(kind, str(kind)) + end)
                if kind == 4 and not flags & 1:
                    sock.sendall(_frame(4, 1, 0, b""))
                if (kind == 1 and flags & 1) or kind in (3, 7):
                    return got
    except OSError as exc:  # ssl.SSLError included
        return got + [type(exc).__name__ + ": " + str(exc)[:120]]
    finally:
        sock.close()

def _zmq_listen(address, seconds):
    """Subscribe to every message on ``address`` for ``seconds``, in the background."""
    import zmq
    got = []
    def listen():
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.RCVTIMEO, 200)
        sub.connect(address)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                got.append(b"".join(sub.recv_multipart()))
            except zmq.Again:
                pass
        sub.close()
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    return thread, got
'''


@dataclass(frozen=True)
class Victim:
    """A project of Bob's with objects in its bucket (key → bytes)."""

    project: dict[str, Any]
    objects: dict[str, bytes]

    @property
    def bucket(self) -> str:
        return str(self.project["bucket"])


@dataclass(frozen=True)
class Attacker:
    """Alice's kernel, with the kit loaded."""

    kernel: Kernel

    def run(self, code: str, timeout: float = 120) -> Any:
        """Run ``code`` (whose last line prints one JSON value) and return that value."""
        result = self.kernel.execute(code, timeout=timeout)
        assert result.error is None, (result.error, result.stdout)
        lines = result.stdout.strip().splitlines()
        assert lines, f"the kernel printed nothing: {result!r}"
        return json.loads(lines[-1])


# -- the storage server, seen from the test side (root) ----------------------------------


def _admin_s3(
    seaweed: SeaweedEndpoint, access_key: str | None = None, secret_key: str | None = None
) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint_url,
        region_name=seaweed.region,
        aws_access_key_id=access_key or seaweed.admin_access_key,
        aws_secret_access_key=secret_key or seaweed.admin_secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


def _key_works(seaweed: SeaweedEndpoint, access_key: str, secret_key: str) -> bool:
    """Whether the S3 server accepts this key within PROPAGATION_S (polled)."""
    client = _admin_s3(seaweed, access_key, secret_key)
    deadline = time.monotonic() + PROPAGATION_S
    while True:
        try:
            client.list_buckets()
            return True
        except ClientError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _damage(seaweed: SeaweedEndpoint, victim: Victim) -> list[str]:
    """What is no longer as it was among the victim's objects (empty: intact)."""
    client, problems = _admin_s3(seaweed), []
    for key, data in victim.objects.items():
        try:
            if client.get_object(Bucket=victim.bucket, Key=key)["Body"].read() != data:
                problems.append(f"{key}: changed")
        except ClientError as exc:
            problems.append(f"{key}: {exc.response.get('Error', {}).get('Code')}")
    return problems


def _conf_dir(seaweed: SeaweedEndpoint) -> Path:
    return Path(getattr(seaweed.server, "conf_dir", seaweed.server.data_dir / "conf"))


def _admin_shell(seaweed: SeaweedEndpoint, commands: str) -> str:
    """``weed shell`` as Balsam: run in the storage conf dir, whose security.toml
    (client certificate, JWT keys) weed reads from its working directory."""
    ports = seaweed.server.ports
    done = subprocess.run(
        [
            str(find_weed_binary()),
            "shell",
            f"-master=127.0.0.1:{ports.master}.{ports.master_grpc}",
            f"-filer=127.0.0.1:{ports.filer}.{ports.filer_grpc}",
        ],
        input=commands,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=_conf_dir(seaweed),
        check=False,
    )
    return done.stdout + done.stderr


def _identity_files(seaweed: SeaweedEndpoint) -> list[str]:
    """The identity files in the filer, as Balsam sees them (never empty: every
    workspace has a key)."""
    listing = _admin_shell(seaweed, "fs.ls /etc/iam/identities\n")
    names = [line.strip() for line in listing.splitlines() if line.strip().endswith(".json")]
    assert names, f"the test's own weed shell (as Balsam) listed no identity: {listing}"
    return names


def _fid_of(seaweed: SeaweedEndpoint, bucket: str) -> str:
    """The file id of a needle in ``bucket``'s collection, read from the volume's
    index and data files (as root, as no other process can).

    This ``weed`` build ("8000GB") has 17-byte index entries: needle id (8 bytes),
    offset in 8-byte units (5 bytes: 4 low big-endian, then the high byte) and
    size (4); the needle's header in the .dat file starts with its 4-byte cookie."""
    for index in sorted(seaweed.server.data_dir.rglob(f"{bucket}_*.idx")):
        volume = index.stem.rsplit("_", 1)[1]
        entries, data = index.read_bytes(), index.with_suffix(".dat").read_bytes()
        for at in range(0, len(entries) - 16, 17):
            needle = int.from_bytes(entries[at : at + 8], "big")
            offset = (
                int.from_bytes(entries[at + 8 : at + 12], "big") + (entries[at + 12] << 32)
            ) * 8
            if offset and int.from_bytes(entries[at + 13 : at + 17], "big"):
                return f"{volume},{needle:x}{data[offset : offset + 4].hex()}"
    raise AssertionError(f"no needle of {bucket} found under {seaweed.server.data_dir}")


def _tcp_listeners(uid: int) -> set[int]:
    """Ports of TCP sockets in LISTEN state held by processes of ``uid``."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    ports = set()
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if not proc.name.isdigit() or proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        ports.add(inodes[target[8:-1]])
    return ports


# -- fixtures: Alice the attacker, Bob the victim ------------------------------------------


def _user(ctx: AppContext, app: Any, stem: str) -> Iterator[TestUser]:
    user = _make_user(ctx, app, f"{stem}{secrets.token_hex(3)}", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def alice_user(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    """Alice, the attacker (module-scoped, unlike the session's ``alice``)."""
    yield from _user(ctx, app, "alice")


@pytest.fixture(scope="module")
def bob_user(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    yield from _user(ctx, app, "bob")


def _create_project(user: TestUser, name: str) -> dict[str, Any]:
    response = user.client.post(
        "/api/v1/projects",
        json={"name": f"{name} {secrets.token_hex(3)}", "description": "", "branchName": "main"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _victim(seaweed: SeaweedEndpoint, bob: TestUser) -> Victim:
    project = _create_project(bob, "Bobs data")
    objects = {f"main/secret-{i}.csv": secrets.token_bytes(64) + b"BOBS-DATA" for i in range(3)}
    client = _admin_s3(seaweed)
    for key, data in objects.items():
        client.put_object(Bucket=project["bucket"], Key=key, Body=data)
    return Victim(project, objects)


@pytest.fixture(scope="module")
def victim(seaweed: SeaweedEndpoint, bob_user: TestUser) -> Victim:
    """Bob's project, the one his workspace runs on."""
    return _victim(seaweed, bob_user)


@pytest.fixture
def fresh_victim(seaweed: SeaweedEndpoint, bob_user: TestUser) -> Victim:
    """Another project of Bob's, for an attack that would destroy data: each
    destructive attack gets a bucket of its own, so one that succeeds does not
    hide whether the next one does."""
    return _victim(seaweed, bob_user)


@pytest.fixture(scope="module")
def workspaces(
    alice_user: TestUser, bob_user: TestUser, victim: Victim, supervisor: Any
) -> dict[str, dict[str, Any]]:
    """Alice's workspace on her own project and Bob's on his, both running."""
    alices_project = _create_project(alice_user, "Alices analys")
    created = {}
    for name, user, project in (
        ("alice", alice_user, alices_project),
        ("bob", bob_user, victim.project),
    ):
        response = user.client.post(
            "/api/v1/workspaces",
            json={
                "name": f"{name}s",
                "templateId": "python",
                "projectId": project["id"],
                "branchId": "main",
            },
        )
        assert response.status_code == 201, response.text
        created[name] = response.json()
    return {
        "alice": wait_state(alice_user, created["alice"]["id"], "running"),
        "bob": wait_state(bob_user, created["bob"]["id"], "running"),
    }


def _home(ctx: AppContext, workspace_id: str) -> Path:
    return Path(ctx.providers.workspaces.root) / workspace_id / "home"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def bob_kernel(
    live_url: str, bob_user: TestUser, workspaces: dict[str, dict[str, Any]]
) -> Iterator[Kernel]:
    kernel = Kernel(live_url, workspaces["bob"]["id"], bob_user.headers)
    yield kernel
    kernel.close()


@pytest.fixture(scope="module")
def bob_key(bob_kernel: Kernel) -> tuple[str, str]:
    """The S3 key of Bob's workspace (its secret is what an attack must not print)."""
    result = bob_kernel.execute(
        "import os; print(os.environ['AWS_ACCESS_KEY_ID'], os.environ['AWS_SECRET_ACCESS_KEY'])"
    )
    assert result.error is None, result
    access_key, secret_key = result.stdout.split()
    return access_key, secret_key


@pytest.fixture(scope="module")
def attacker(
    ctx: AppContext,
    live_url: str,
    alice_user: TestUser,
    seaweed: SeaweedEndpoint,
    workspaces: dict[str, dict[str, Any]],
) -> Iterator[Attacker]:
    """Alice's kernel, with a ``weed`` binary she brought into her home and the
    storage server's ports as literals."""
    home = _home(ctx, workspaces["alice"]["id"])
    uid = home.stat().st_uid
    assert uid != 0, "the attacker's workspace must not run as root"
    weed = home / "weed"
    shutil.copyfile(find_weed_binary(), weed)
    os.chown(weed, uid, uid)
    weed.chmod(0o700)
    kernel = Kernel(live_url, workspaces["alice"]["id"], alice_user.headers)
    setup = {"weed": str(weed), "ports": seaweed.server.ports.as_dict()}
    result = kernel.execute(f"ATTACK = {json.dumps(setup)}\n{KIT}\nprint(os.getuid())")
    assert result.error is None, result
    assert result.stdout.strip() == str(uid)
    attacker = Attacker(kernel)
    tool = attacker.run("print(json.dumps(_weed(['version'])))")
    assert tool["rc"] == 0 and "version" in tool["out"], tool  # her weed runs: no vacuous pass
    yield attacker
    kernel.close()


def _shell(attacker: Attacker, commands: str) -> dict[str, Any]:
    got: dict[str, Any] = attacker.run(f"print(json.dumps(_weed_shell({commands!r})))")
    return got


# -- the filer's gRPC port, through weed shell ------------------------------------------------


def test_weed_shell_lists_no_identity(attacker: Attacker, bob_key: tuple[str, str]) -> None:
    got = _shell(attacker, "fs.ls /etc/iam/identities\n")
    listed = [line for line in got["out"].splitlines() if line.strip().endswith(".json")]
    assert not listed, got
    assert bob_key[0] not in got["out"], got


def test_weed_shell_prints_no_secret(
    attacker: Attacker, seaweed: SeaweedEndpoint, bob_key: tuple[str, str]
) -> None:
    names = _identity_files(seaweed)[:6]
    got = _shell(attacker, "".join(f"fs.cat /etc/iam/identities/{name}\n" for name in names))
    assert bob_key[1] not in got["out"], got
    assert "secret_key" not in got["out"] and "secretKey" not in got["out"], got


def test_weed_shell_lists_no_bucket(attacker: Attacker, victim: Victim) -> None:
    got = _shell(attacker, "fs.ls /buckets/\n")
    assert victim.bucket not in got["out"], got


def test_weed_shell_s3_configure_creates_no_identity(
    attacker: Attacker, seaweed: SeaweedEndpoint
) -> None:
    access_key, secret_key = "EVIL" + secrets.token_hex(8).upper(), secrets.token_hex(20)
    got = _shell(
        attacker,
        f"s3.configure -user=evil{secrets.token_hex(3)} -access_key="
        f"{access_key} -secret_key={secret_key} -actions=Admin -apply\n",
    )
    assert not _key_works(seaweed, access_key, secret_key), got


def test_weed_shell_collection_delete_destroys_nothing(
    attacker: Attacker, seaweed: SeaweedEndpoint, fresh_victim: Victim
) -> None:
    got = _shell(
        attacker, f"lock\ncollection.delete -collection={fresh_victim.bucket} -apply\nunlock\n"
    )
    assert not _damage(seaweed, fresh_victim), (_damage(seaweed, fresh_victim), got)


def test_weed_shell_fs_rm_destroys_nothing(
    attacker: Attacker, seaweed: SeaweedEndpoint, fresh_victim: Victim
) -> None:
    got = _shell(
        attacker,
        "".join(f"fs.rm -r /buckets/{fresh_victim.bucket}/{key}\n" for key in fresh_victim.objects),
    )
    assert not _damage(seaweed, fresh_victim), (_damage(seaweed, fresh_victim), got)


def test_weed_filer_copy_writes_nothing_into_another_bucket(
    attacker: Attacker, seaweed: SeaweedEndpoint, fresh_victim: Victim
) -> None:
    def keys() -> list[str]:
        listed = _admin_s3(seaweed).list_objects_v2(Bucket=fresh_victim.bucket)
        return sorted(entry["Key"] for entry in listed.get("Contents", []))

    before, name = keys(), f"planted-{secrets.token_hex(4)}.txt"
    got = attacker.run(
        f"print(json.dumps(_filer_copy({name!r}, 'ALICE WAS HERE', "
        f"'/buckets/{fresh_victim.bucket}/main/')))"
    )
    assert keys() == before, got
    assert not _damage(seaweed, fresh_victim), (_damage(seaweed, fresh_victim), got)


# -- the HTTP ports of master, volume and filer ----------------------------------------------


def _http(attacker: Attacker, method: str, port: int, path: str) -> dict[str, Any]:
    got: dict[str, Any] = attacker.run(
        f"print(json.dumps(_http({method!r}, 'http://127.0.0.1:{port}{path}')))"
    )
    return got


def test_master_col_delete_is_refused(
    attacker: Attacker, seaweed: SeaweedEndpoint, fresh_victim: Victim
) -> None:
    got = _http(
        attacker,
        "GET",
        seaweed.server.ports.master,
        f"/col/delete?collection={fresh_victim.bucket}",
    )
    assert got["status"] in REFUSED, got
    assert not _damage(seaweed, fresh_victim), (_damage(seaweed, fresh_victim), got)


def test_master_dir_assign_is_refused(attacker: Attacker, seaweed: SeaweedEndpoint) -> None:
    got = _http(attacker, "GET", seaweed.server.ports.master, "/dir/assign")
    assert got["status"] in REFUSED, got
    assert '"fid"' not in got["body"], got


def test_volume_http_serves_and_deletes_nothing(
    attacker: Attacker, seaweed: SeaweedEndpoint, fresh_victim: Victim
) -> None:
    fid = _fid_of(seaweed, fresh_victim.bucket)
    read = _http(attacker, "GET", seaweed.server.ports.volume, f"/{fid}")
    assert read["status"] in REFUSED and "BOBS-DATA" not in read["body"], read
    deleted = _http(attacker, "DELETE", seaweed.server.ports.volume, f"/{fid}")
    assert deleted["status"] in REFUSED, deleted
    assert not _damage(seaweed, fresh_victim), (_damage(seaweed, fresh_victim), deleted)


@pytest.mark.parametrize("path", ["/buckets/", "/etc/iam/identities/", "/buckets/{bucket}/{key}"])
def test_filer_http_serves_nothing(
    attacker: Attacker, seaweed: SeaweedEndpoint, victim: Victim, path: str
) -> None:
    target = path.format(bucket=victim.bucket, key=next(iter(victim.objects)))
    got = _http(attacker, "GET", seaweed.server.ports.filer, target)
    assert got["status"] in REFUSED, got
    assert victim.bucket not in got["body"] and "BOBS-DATA" not in got["body"], got


def test_filer_http_deletes_nothing(
    attacker: Attacker, seaweed: SeaweedEndpoint, fresh_victim: Victim
) -> None:
    got = [
        _http(
            attacker, "DELETE", seaweed.server.ports.filer, f"/buckets/{fresh_victim.bucket}/{key}"
        )
        for key in fresh_victim.objects
    ]
    assert all(reply["status"] in REFUSED for reply in got), got
    assert not _damage(seaweed, fresh_victim), (_damage(seaweed, fresh_victim), got)


def test_weeds_unix_sockets_are_closed_to_workspaces(
    attacker: Attacker, seaweed: SeaweedEndpoint
) -> None:
    """weed opens extra unix sockets, by default at fixed /tmp paths named after a port."""
    ports = {str(port) for port in seaweed.server.ports.as_dict().values()}
    sockets = [
        str(p) for p in Path("/tmp").glob("seaweedfs-*.sock") if p.stem.rsplit("-", 1)[-1] in ports
    ]
    sockets += [str(p) for p in seaweed.server.data_dir.rglob("*.sock")]
    got = attacker.run(f"print(json.dumps({{p: _unix_connect(p) for p in {sockets!r}}}))")
    assert "connected" not in got.values(), got


# -- gRPC: no plaintext, no TLS without Balsam's client certificate ----------------------------


GRPC_WRITES = {
    "s3_grpc": "/messaging_pb.SeaweedS3IamCache/PutIdentity",
    "filer_grpc": "/iam_pb.SeaweedIdentityAccessManagement/CreateUser",
}


@pytest.mark.parametrize("port_name", ["s3_grpc", "filer_grpc"])
def test_grpc_identity_writes_are_refused(
    attacker: Attacker, seaweed: SeaweedEndpoint, port_name: str
) -> None:
    """S3 gRPC PutIdentity and the filer's IAM CreateUser, with an identity of Alice's
    own making, in plaintext and over TLS without a client certificate."""
    access_key, secret_key = "EVIL" + secrets.token_hex(8).upper(), secrets.token_hex(20)
    port = seaweed.server.ports.as_dict()[port_name]
    message = f"_pb(1, _identity('evil{secrets.token_hex(3)}', {access_key!r}, {secret_key!r}))"
    got = attacker.run(
        f"print(json.dumps({{tls: _grpc({port}, {GRPC_WRITES[port_name]!r}, {message}, tls)"
        " for tls in (False, True)}))"
    )
    assert not _key_works(seaweed, access_key, secret_key), got
    assert not any("SETTINGS" in frames for frames in got.values()), got


@pytest.mark.parametrize(
    "port_name", ["master_grpc", "volume_grpc", "filer_grpc", "s3_grpc", "admin_grpc"]
)
def test_no_grpc_port_speaks_to_a_workspace(
    attacker: Attacker, seaweed: SeaweedEndpoint, port_name: str
) -> None:
    """No gRPC listener answers HTTP/2 to a client without Balsam's certificate."""
    port = seaweed.server.ports.as_dict()[port_name]
    got = attacker.run(
        f"print(json.dumps({{tls: _grpc({port}, '/grpc.health.v1.Health/Check', b'', tls)"
        " for tls in (False, True)}))"
    )
    assert not any("SETTINGS" in frames for frames in got.values()), got


# -- the S3 port's own IAM API ---------------------------------------------------------------


def test_a_workspace_key_mints_no_key_of_its_own(
    attacker: Attacker,
    seaweed: SeaweedEndpoint,
    alice_user: TestUser,
    workspaces: dict[str, dict[str, Any]],
) -> None:
    project_id = workspaces["alice"]["projectId"]
    listed = alice_user.client.get(f"/api/v1/projects/{project_id}/credentials")
    assert listed.status_code == 200, listed.text
    got = attacker.run(
        "import boto3, botocore.config\n"
        "iam = boto3.client('iam', endpoint_url=os.environ['AWS_ENDPOINT_URL'], "
        "region_name='us-east-1', config=botocore.config.Config(retries={'max_attempts': 1}, "
        "connect_timeout=_T, read_timeout=_T))\n"
        "try:\n"
        "    key = iam.create_access_key()['AccessKey']\n"
        "    got = {'created': [key['AccessKeyId'], key['SecretAccessKey']]}\n"
        "except Exception as exc:\n"
        "    got = {'refused': repr(exc)[:300]}\n"
        "print(json.dumps(got))"
    )
    if "created" in got:
        assert not _key_works(seaweed, *got["created"]), f"a working key was minted: {got}"
    assert "refused" in got, got
    again = alice_user.client.get(f"/api/v1/projects/{project_id}/credentials")
    assert again.json() == listed.json()


# -- Bob's notebooks: kernel channels and Jupyter server -------------------------------------


def _bobs_kernel_info(bob_kernel: Kernel) -> dict[str, Any]:
    """Bob's kernel's connection file, read as root."""
    result = bob_kernel.execute(
        "from ipykernel.connect import get_connection_file\nprint(get_connection_file())"
    )
    assert result.error is None, result
    info: dict[str, Any] = json.loads(Path(result.stdout.strip()).read_text())
    return info


def test_no_subscription_to_bobs_kernel(attacker: Attacker, bob_kernel: Kernel) -> None:
    """A ZMQ SUB socket on Bob's IOPub channel receives nothing of what he runs."""
    info = _bobs_kernel_info(bob_kernel)
    if info["transport"] == "tcp":
        address = f"tcp://{info['ip']}:{info['iopub_port']}"
    else:
        address = f"ipc://{info['ip']}-{info['iopub_port']}"
    marker = f"BOBS-CELL-{secrets.token_hex(6)}"
    started = attacker.kernel.execute(f"_zt, _zgot = _zmq_listen({address!r}, 6)")
    assert started.error is None, started
    time.sleep(1.5)  # ZMQ subscriptions take a moment to reach the publisher
    for _ in range(3):
        assert bob_kernel.execute(f"print({marker!r})").stdout.strip() == marker
        time.sleep(0.3)
    raw = (
        f"_unix_connect({address[len('ipc://') :]!r})" if address.startswith("ipc://") else "'tcp'"
    )
    got = attacker.run(
        "_zt.join(15)\n"
        f"print(json.dumps({{'messages': len(_zgot), 'marker': any({marker.encode()!r} in m "
        f"for m in _zgot), 'raw': {raw}}}))"
    )
    assert not got["marker"] and got["messages"] == 0, (address, got)
    if address.startswith("ipc://"):
        assert got["raw"] == "PermissionError", (address, got)


def test_no_route_to_bobs_jupyter_server(
    ctx: AppContext, attacker: Attacker, bob_kernel: Kernel, workspaces: dict[str, dict[str, Any]]
) -> None:
    """Bob's server has no TCP listener (but for ipykernel's receive-only pipe for
    output of forked processes), and Alice can neither reach a TCP port of his nor
    open his server's unix socket."""
    bob = workspaces["bob"]
    uid = _home(ctx, bob["id"]).stat().st_uid
    endpoint = ctx.providers.workspaces.endpoint(bob["id"])
    assert endpoint is not None
    pipe = bob_kernel.execute(
        "print(getattr(get_ipython().kernel.iopub_thread, '_pipe_port', None))"
    ).stdout.strip()
    ports = _tcp_listeners(uid) - ({int(pipe)} if pipe.isdigit() else set())
    url = urlparse(endpoint.url)
    socket_path = getattr(endpoint, "socket", None)
    if socket_path is None and url.port:
        ports.add(url.port)
    request = f"GET {url.path}api/kernels HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    targets: list[Any] = [["127.0.0.1", port] for port in sorted(ports)]
    targets += [socket_path] if socket_path else []
    got = attacker.run(f"print(json.dumps([[t, _raw_http(t, {request!r})] for t in {targets!r}]))")
    answered = [(target, reply) for target, reply in got if reply.startswith("HTTP/")]
    assert not answered, got
    assert not ports, f"Bob's workspace listens on TCP ports {sorted(ports)}: {got}"
    if socket_path:
        assert dict((str(t), r) for t, r in got)[socket_path] == "PermissionError", got


# -- files -----------------------------------------------------------------------------------


def test_no_file_of_bob_or_of_the_platform_is_readable(
    ctx: AppContext,
    attacker: Attacker,
    seaweed: SeaweedEndpoint,
    workspaces: dict[str, dict[str, Any]],
) -> None:
    data_dir = Path(ctx.settings.data_dir).resolve()
    bob_home = _home(ctx, workspaces["bob"]["id"])
    conf = _conf_dir(seaweed)
    database = urlparse(ctx.settings.database_url)
    candidates = [
        bob_home,
        bob_home / ".git-credentials",
        bob_home / ".gitconfig",
        data_dir / "balsam.db",
        data_dir / "storage" / "admin.json",
        data_dir / "storage",
        ctx.workspace_secrets.root,
        data_dir / "workspaces",
        data_dir / "git",
        Path(database.path) if database.scheme.startswith("sqlite") else data_dir / "balsam.db",
        seaweed.server.data_dir,
        conf,
        conf / "security.toml",
        *conf.glob("*.key"),
        *conf.glob("*.crt"),
        *conf.glob("*.pem"),
        *seaweed.server.data_dir.rglob("*.dat"),
    ]
    endpoint = ctx.providers.workspaces.endpoint(workspaces["bob"]["id"])
    if endpoint is not None and getattr(endpoint, "socket", None):
        candidates.append(Path(endpoint.socket).parent)  # type: ignore[attr-defined]
    targets = sorted({str(path) for path in candidates if path.exists()})
    assert str(conf / "security.toml") in targets
    got = attacker.run(f"print(json.dumps({{p: _try_read(p) for p in {targets!r}}}))")
    readable = {path: result for path, result in got.items() if result != "denied"}
    assert not readable, readable


def test_no_secret_in_any_process_alice_can_see(
    ctx: AppContext,
    attacker: Attacker,
    seaweed: SeaweedEndpoint,
    bob_key: tuple[str, str],
    workspaces: dict[str, dict[str, Any]],
) -> None:
    """No command line or environment Alice can read holds a secret of Bob's or of
    the platform (``ps`` shows every process's arguments to every user)."""
    bobs = ctx.workspace_secrets.load(workspaces["bob"]["id"])
    assert bobs is not None
    wanted = {
        "bob's S3 secret": bob_key[1],
        "bob's server token": bobs.server_token,
        "bob's git token": bobs.git_token,
        "the storage admin secret": seaweed.admin_secret_key,
    }
    security = (_conf_dir(seaweed) / "security.toml").read_text()
    jwt_keys = re.findall(r'^key\s*=\s*"([0-9A-Za-z+/=_-]{16,})"', security, re.MULTILINE)
    assert jwt_keys, security  # weed's JWT signing keys
    wanted |= {f"weed's JWT key {i}": key for i, key in enumerate(jwt_keys)}
    got = attacker.run(f"print(json.dumps(_secrets_in_proc({wanted!r})))")
    assert not got, got


def test_weed_filer_copy_plants_no_identity(attacker: Attacker, seaweed: SeaweedEndpoint) -> None:
    """An identity file written into the filer's IAM folder (loaded at the S3
    server's next start at the latest). Last but one: on a server where the route
    is open, the file planted this way (its content in chunks, not inline) breaks
    every later IAM call until it is removed, which this test then does."""
    name, access_key = f"evil{secrets.token_hex(4)}", "EVIL" + secrets.token_hex(8).upper()
    secret_key = secrets.token_hex(20)
    identity = {
        "name": name,
        "actions": ["Admin"],
        "credentials": [{"access_key": access_key, "secret_key": secret_key, "status": "Active"}],
    }
    try:
        got = attacker.run(
            f"print(json.dumps(_filer_copy({name + '.json'!r}, "
            f"{json.dumps(identity)!r}, '/etc/iam/identities/')))"
        )
        assert f"{name}.json" not in _identity_files(seaweed), got
        assert not _key_works(seaweed, access_key, secret_key), got
    finally:
        _admin_shell(seaweed, f"fs.rm /etc/iam/identities/{name}.json\n")


# -- the platform's own memory ------------------------------------------------------------------


def test_a_huge_page_from_her_own_server_is_refused_not_buffered(
    attacker: Attacker,
    live_url: str,
    alice_user: TestUser,
    workspaces: dict[str, dict[str, Any]],
) -> None:
    """Balsam reads HTML pages whole (to remove the server's token): a 64 MiB sparse
    .html served by her own JupyterLab must not be read into the root process."""
    made = attacker.run(
        "p = os.path.expanduser('~/huge.html')\n"
        "with open(p, 'wb') as f: f.truncate(64 * 2**20)\n"
        "print(json.dumps(os.path.getsize(p)))"
    )
    assert made == 64 * 2**20
    url = f"{live_url}/workspaces/{workspaces['alice']['id']}/files/huge.html"
    with httpx.stream("GET", url, headers=alice_user.headers, timeout=60) as r:
        status = r.status_code
        read = sum(len(chunk) for chunk in r.iter_bytes())
    assert status == 502 and read < 2**20, (status, read)


#: Run in her kernel: her JupyterLab's socket is swapped for a server of her own that
#: answers every request with headers meant for the portal; ``_restore()`` undoes it.
OWN_SERVER = """
import socket, threading
_cmd = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")
_path = next(a.split(b"=", 1)[1] for a in _cmd if a.startswith(b"--ServerApp.sock=")).decode()
os.rename(_path, _path + ".real")
_srv = socket.socket(socket.AF_UNIX)
_srv.bind(_path)
_srv.listen(64)
_REPLY = (b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 6\\r\\n"
          b"Set-Cookie: balsam_session=planted; Path=/\\r\\n"
          b"Set-Cookie: balsam_lang=en; Path=/\\r\\n"
          b"Set-Cookie: =balsam_session=nameless; Path=/\\r\\n"
          b"Set-Cookie: hers=1; Path=/\\r\\nService-Worker-Allowed: /\\r\\n"
          b"Cross-Origin-Opener-Policy: same-origin\\r\\nConnection: close\\r\\n\\r\\nforged")
def _answer():
    while True:
        try:
            c, _ = _srv.accept()
        except OSError:
            return
        c.recv(65536); c.sendall(_REPLY); c.close()
threading.Thread(target=_answer, daemon=True).start()
def _restore():
    _srv.close(); os.unlink(_path); os.rename(_path + ".real", _path)
print(json.dumps(_path))
"""


def test_her_own_server_sets_no_portal_cookie_worker_scope_or_opener_policy(
    attacker: Attacker,
    live_url: str,
    alice_user: TestUser,
    workspaces: dict[str, dict[str, Any]],
) -> None:
    """Her JupyterLab is hers to replace: what it answers must not set the portal's
    session or language cookie (they belong to the host, whatever the port), widen a
    service worker's scope, or match the portal's Cross-Origin-Opener-Policy."""
    base = f"{live_url}/workspaces/{workspaces['alice']['id']}"
    assert attacker.run(OWN_SERVER).endswith(".sock")
    try:
        # Enough at once that some go over new connections (idle ones are reused).
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(
                lambda n: httpx.get(f"{base}/api/status?{n}", headers=alice_user.headers,
                                    timeout=30), range(24)))  # fmt: skip
    finally:
        attacker.run("_restore(); print(json.dumps(True))")
    forged = [r for r in answers if r.text == "forged"]
    assert forged, [r.status_code for r in answers]  # her server did answer
    for r in forged:
        cookies = r.headers.get_list("set-cookie")
        assert [c.split("=", 1)[0] for c in cookies] == ["hers"], cookies
        assert "service-worker-allowed" not in r.headers
        assert "cross-origin-opener-policy" not in r.headers
    # And a browser registering a worker from her workspace is refused outright.
    worker = httpx.get(
        f"{base}/files/sw.js", headers={**alice_user.headers, "Service-Worker": "script"}
    )
    assert worker.status_code == 403
    assert httpx.get(f"{base}/api/status", headers=alice_user.headers).status_code == 200


# -- the portal's pages and forms, and another bucket's kept versions --------------------------


def test_the_portal_gives_a_kernel_nothing(
    attacker: Attacker,
    live_url: str,
    workspaces: dict[str, dict[str, Any]],
    victim: Victim,
    bob_user: TestUser,
) -> None:
    """Without a session the kernel's requests reach no page, no form and no file
    outside the stylesheets (a project's page and files, search, copying a resource,
    creating a user or a token included); another project's kept object versions
    stay closed."""
    bobs = workspaces["bob"]["id"]
    got = attacker.run(
        "import urllib.request, urllib.error, boto3\n"
        "class _Stay(urllib.request.HTTPRedirectHandler):\n"
        "    def redirect_request(self, *args, **kwargs): return None\n"
        "_open = urllib.request.build_opener(_Stay).open\n"
        "def _status(path, data=None):\n"
        f"    req = urllib.request.Request({live_url!r} + path, data=data, headers={{"
        f"'Origin': {live_url!r}, 'Accept': 'text/html'}})\n"
        "    try:\n"
        "        with _open(req, timeout=10) as r:\n"
        "            return [r.status, r.headers.get('location')]\n"
        "    except urllib.error.HTTPError as e:\n"
        "        return [e.code, e.headers.get('location')]\n"
        "out = {\n"
        "  'status': _status('/admin/status'),\n"
        f"  'delete': _status('/workspaces-ui/{bobs}/delete', b'csrf=guess'),\n"
        "  'traversal': _status('/static/..%2f..%2fsettings.py'),\n"
        "  'passwd': _status('/static/../../../../etc/passwd'),\n"
        f"  'project': _status('/projects/{victim.bucket}?tab=keys'),\n"
        f"  'file': _status('/projects/{victim.bucket}/file?branch=main&path=README.md'),\n"
        "  'search': _status('/search?q=x'),\n"
        "  'copy': _status('/library/x/copy', b'csrf=guess&target=x/main&resource=x'),\n"
        "  'user': _status('/admin/users', b'csrf=guess&username=evil&password=x'),\n"
        "  'token': _status('/account/tokens', b'csrf=guess&name=evil'),\n"
        "}\n"
        "s3 = boto3.client('s3')\n"
        "versions = []\n"
        f"for call in (lambda: s3.list_object_versions(Bucket={victim.bucket!r}), "
        f"lambda: s3.delete_object(Bucket={victim.bucket!r}, Key={next(iter(victim.objects))!r}, "
        "VersionId='null')):\n"
        "    try:\n"
        "        call(); versions.append('ALLOWED')\n"
        "    except Exception as exc:\n"
        "        error = getattr(exc, 'response', {}).get('Error', {})\n"
        "        versions.append(error.get('Code', repr(exc)))\n"
        "out['versions'] = versions\n"
        "print(json.dumps(out))"
    )
    assert got["status"] == [303, "/login?next=/admin/status"], got
    assert got["delete"] == [303, "/login"], got
    assert got["traversal"][0] == 404 and got["passwd"][0] == 404, got
    for page in ("project", "file", "search"):  # the new portal pages: log in first
        assert got[page][0] == 303 and got[page][1].startswith("/login?next="), got
    for form in ("copy", "user", "token"):
        assert got[form] == [303, "/login"], got
    assert got["versions"] == ["AccessDenied"] * 2, got
    assert bob_user.client.get(f"/api/v1/workspaces/{bobs}").json()["state"] == "running"


# -- afterwards --------------------------------------------------------------------------------


def test_afterwards_bobs_data_is_intact_and_alices_key_works_on_her_bucket_only(
    attacker: Attacker, seaweed: SeaweedEndpoint, victim: Victim
) -> None:
    assert not _damage(seaweed, victim)
    got = attacker.run(
        "import boto3\n"
        "s3 = boto3.client('s3')\n"
        "s3.put_object(Bucket=os.environ['BALSAM_BUCKET'], Key='main/egen.txt', Body=b'mine')\n"
        "own = s3.get_object(Bucket=os.environ['BALSAM_BUCKET'], Key='main/egen.txt')"
        "['Body'].read().decode()\n"
        "others = []\n"
        f"for call in (lambda: s3.get_object(Bucket={victim.bucket!r}, "
        f"Key={next(iter(victim.objects))!r}), lambda: s3.list_objects_v2(Bucket="
        f"{victim.bucket!r}), lambda: s3.put_object(Bucket={victim.bucket!r}, Key='x', "
        "Body=b'x')):\n"
        "    try:\n"
        "        call()\n"
        "        others.append('ALLOWED')\n"
        "    except Exception as exc:\n"
        "        others.append(getattr(exc, 'response', {}).get('Error', {}).get('Code', "
        "repr(exc)))\n"
        "print(json.dumps({'own': own, 'others': others}))"
    )
    assert got == {"own": "mine", "others": ["AccessDenied"] * 3}, got


EVIL_LAUNCHER = """
import os, runpy, sys
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RAN'), 'w').write('x')
sys.path.pop(0)
del sys.modules['ipykernel_launcher']
runpy.run_module('ipykernel_launcher', run_name='__main__')
"""


def test_files_in_a_notebooks_folder_do_not_run_when_its_kernel_starts(
    live_url: str,
    bob_user: TestUser,
    workspaces: dict[str, dict[str, Any]],
    bob_kernel: Kernel,
) -> None:
    """A project member can commit any file to a shared branch: an ipykernel_launcher.py
    next to a notebook would run as whoever opens the notebook, before any cell. Not so;
    the notebook's neighbours still import once the kernel has started."""
    planted = bob_kernel.execute(
        "import os, pathlib\n"
        "folder = pathlib.Path.home() / 'delad'\n"
        "folder.mkdir(exist_ok=True)\n"
        f"(folder / 'ipykernel_launcher.py').write_text({EVIL_LAUNCHER!r})\n"
        "(folder / 'hjalp.py').write_text('VALUE = 41 + 1')\n"
        "for name in ('psutil', 'jedi'):  # imported by ipykernel/IPython only later\n"
        "    (folder / f'{name}.py').write_text('raise SystemExit(\"planted\")')\n"
        "(folder / 'RAN').unlink(missing_ok=True)"
    )
    assert planted.error is None, planted
    kernel = Kernel(live_url, workspaces["bob"]["id"], bob_user.headers, notebook="delad/nb.ipynb")
    try:
        result = kernel.execute(
            "import os, sys, hjalp, psutil, jedi\n"
            "print(os.path.exists('RAN'), hjalp.VALUE, os.path.basename(os.getcwd()),"
            " psutil.__file__.startswith(sys.prefix), jedi.__file__.startswith(sys.prefix))"
        )
        specs = httpx.get(kernel.base + "api/kernelspecs", headers=bob_user.headers, timeout=30)
    finally:
        kernel.close()
    assert result.error is None, result
    assert result.stdout.split() == ["False", "42", "delad", "True", "True"], result
    # Only Balsam's own kernel specs: not, say, Debian's IRkernel (R without --no-restore).
    assert set(specs.json()["kernelspecs"]) == {"python3"}


def test_the_data_api_gives_a_kernel_nothing_with_the_keys_it_holds(
    attacker: Attacker, live_url: str, victim: Victim
) -> None:
    """Balsam's data API is on a port the kernel reaches; what the workspace holds (its
    S3 key, its git token) opens none of it, for another's project or its own."""
    key = next(iter(victim.objects))
    got = attacker.run(
        "import base64, os, pathlib, urllib.parse, urllib.request, urllib.error\n"
        "line = (pathlib.Path.home() / '.git-credentials').read_text().strip()\n"
        "git = urllib.parse.urlsplit(line)\n"
        "s3 = os.environ['AWS_SECRET_ACCESS_KEY']\n"
        "basic = base64.b64encode(f'{git.username}:{git.password}'.encode()).decode()\n"
        "auths = {'none': None, 's3': 'Bearer ' + s3, 'git': 'Bearer ' + (git.password or ''),\n"
        "         'basic': 'Basic ' + basic}\n"
        f"base = {live_url!r} + '/api/v1/projects/{victim.project['id']}'\n"
        f"calls = [('GET', '/data?prefix=main/', None), ('GET', '/data/{key}', None),\n"
        f"         ('PUT', '/data/main/planted.txt', b'x'), ('DELETE', '/data/{key}', None),\n"
        "         ('GET', '/usage', None), ('POST', '/data/uploads', b'{}'),\n"
        "         ('GET', '/uploads', None), ('PUT', '/uploads/x/parts/1', b'x'),\n"
        f"         ('POST', '/data/{key}/move', b'{{}}'), ('GET', '/deleted?prefix=main/', None)]\n"
        "out = {}\n"
        "for name, auth in auths.items():\n"
        "    for method, path, body in calls:\n"
        "        req = urllib.request.Request(base + path, data=body, method=method)\n"
        "        if auth:\n"
        "            req.add_header('Authorization', auth)\n"
        "        try:\n"
        "            with urllib.request.urlopen(req, timeout=10) as r:\n"
        "                status = r.status\n"
        "        except urllib.error.HTTPError as e:\n"
        "            status = e.code\n"
        "        out[f'{name} {method} {path}'] = status\n"
        "print(json.dumps(out))"
    )
    assert set(got.values()) == {401}, got


def test_a_kernel_over_its_projects_quota_can_no_longer_write_with_its_key(
    ctx: AppContext, attacker: Attacker, workspaces: dict[str, dict[str, Any]]
) -> None:
    """The quota sweep closes the bucket to the workspace's own key: puts, deletes,
    copies and multipart uploads are refused, reads still work; nothing the kernel
    holds opens it again. Reopened afterwards for the module's other attacks."""
    project_id = workspaces["alice"]["projectId"]
    with ctx.sessions() as session, session.begin():
        session.execute(update(Project).where(Project.id == project_id).values(
            storage_quota_bytes=1))  # fmt: skip
    try:
        first = attacker.run(
            "import boto3, os\n"
            "s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n"
            "bucket = os.environ['BALSAM_BUCKET']\n"
            "s3.put_object(Bucket=bucket, Key='main/over.bin', Body=b'x' * 100)\n"
            "print(json.dumps(True))"
        )
        assert first is True
        assert enforce_quotas(ctx, project_id) == 1
        deadline = time.monotonic() + 10
        while True:
            got = attacker.run(
                "import boto3, botocore, os\n"
                "s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n"
                "bucket = os.environ['BALSAM_BUCKET']\n"
                "def code(call):\n"
                "    try:\n"
                "        call()\n"
                "        return 'ok'\n"
                "    except botocore.exceptions.ClientError as e:\n"
                "        return e.response['Error']['Code']\n"
                "out = {\n"
                "  'put': code(lambda: s3.put_object(Bucket=bucket, Key='main/more', Body=b'y')),\n"
                "  'delete': code(lambda: s3.delete_object(Bucket=bucket, Key='main/over.bin')),\n"
                "  'copy': code(lambda: s3.copy_object(Bucket=bucket, Key='main/copy',\n"
                "      CopySource={'Bucket': bucket, 'Key': 'main/over.bin'})),\n"
                "  'multipart': code(lambda: s3.create_multipart_upload(Bucket=bucket,\n"
                "      Key='main/mp')),\n"
                "  'read': code(lambda: s3.get_object(Bucket=bucket, Key='main/over.bin')),\n"
                "  'list': code(lambda: s3.list_objects_v2(Bucket=bucket)),\n"
                "}\n"
                "print(json.dumps(out))"
            )
            if got["put"] != "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == {
            "put": "AccessDenied",
            "delete": "AccessDenied",
            "copy": "AccessDenied",
            "multipart": "AccessDenied",
            "read": "ok",
            "list": "ok",
        }, got
    finally:
        with ctx.sessions() as session, session.begin():
            session.execute(update(Project).where(Project.id == project_id).values(
                storage_quota_bytes=None))  # fmt: skip
        enforce_quotas(ctx, project_id)
