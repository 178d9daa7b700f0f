"""What a local process that is not Balsam tries against the embedded SeaweedFS.

Helpers for the isolation tests: an unused uid to attack from, ``weed shell``
and HTTP as that uid, raw gRPC calls, a filer admin JWT, a hardened server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pwd
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from balsam.embedded import SeaweedPorts, SeaweedServer, find_weed_binary

IAM_SERVICE = "/iam_pb.SeaweedIdentityAccessManagement"
S3_IAM_CACHE_SERVICE = "/messaging_pb.SeaweedS3IamCache"
ADMIN_KEY = ("AKADMINTEST", "admin-secret-for-tests")


def unused_uid(base: int) -> int:
    """A uid no account and no running process has (in ``[base, base + 9999]``)."""
    in_use = {path.stat().st_uid for path in Path("/proc").iterdir() if path.name.isdigit()}
    while True:
        uid = base + random.randrange(10_000)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if uid not in in_use:
                return uid


@dataclass(frozen=True)
class Attacker:
    """Runs commands as a uid of its own, from ``/``, with an empty environment."""

    uid: int

    def run(self, command: list[str], *, stdin: str = "", timeout: float = 30) -> str:
        """stdout and stderr of ``command`` (any exit status; killed at ``timeout``)."""
        try:
            done = subprocess.run(
                command, input=stdin.encode(), capture_output=True, timeout=timeout, cwd="/",
                env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
                user=self.uid, group=self.uid, extra_groups=[], check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            return _text(exc.stdout) + _text(exc.stderr) + "\n(timed out)"
        return _text(done.stdout) + _text(done.stderr)

    def weed_shell(self, server: SeaweedServer, commands: str, timeout: float = 10) -> str:
        """``weed shell`` against ``server``'s master and filer gRPC ports."""
        ports = server.ports
        return self.run(
            [str(find_weed_binary()), "shell",
             f"-master=127.0.0.1:{ports.master}.{ports.master_grpc}",
             f"-filer=127.0.0.1:{ports.filer}.{ports.filer_grpc}"],
            stdin=commands + "\nexit\n", timeout=timeout,
        )  # fmt: skip

    def http(self, url: str, method: str = "GET") -> str:
        """``<status> <body>`` of one request, or ``error <reason>``."""
        script = (
            "import sys, urllib.request, urllib.error\n"
            "req = urllib.request.Request(sys.argv[1], method=sys.argv[2])\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=5); print(r.status, r.read()[:4000])\n"
            "except urllib.error.HTTPError as e: print(e.code, e.read()[:4000])\n"
            "except OSError as e: print('error', e)\n"
        )
        return self.run(["/usr/bin/python3", "-c", script, url, method])


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def filer_admin_jwt(key: str, lifetime_s: int = 60) -> str:
    """An HS256 token with only ``exp``, as weed's GenJwtForFilerAdmin makes it."""

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = encode(json.dumps({"exp": int(time.time()) + lifetime_s}).encode())
    signature = hmac.new(key.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{encode(signature)}"


def raw_call(
    channel: grpc.Channel, method: str, request: bytes = b"", *, token: str | None = None
) -> grpc.StatusCode:
    """The status of one unary call with a raw (protobuf-encoded) request."""
    call = channel.unary_unary(method)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    try:
        call(request, timeout=5, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def hardened_server(data_dir: Path, *, uid: int | None, **options: object) -> SeaweedServer:
    """A SeaweedServer on free ports (not started)."""
    return SeaweedServer(
        data_dir, ports=SeaweedPorts.pick_free(), admin_access_key=ADMIN_KEY[0],
        admin_secret_key=ADMIN_KEY[1], run_as_uid=uid, stop_timeout=5.0,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def readable_by(uid: int, path: Path) -> bool:
    """Whether ``uid`` can open ``path`` (a file) or list it (a folder)."""
    probe = "import os,sys; p=sys.argv[1]; os.listdir(p) if os.path.isdir(p) else open(p).read()"
    done = subprocess.run(["/usr/bin/python3", "-c", probe, str(path)], user=uid, group=uid,
                          extra_groups=[], capture_output=True, cwd="/", check=False)  # fmt: skip
    return done.returncode == 0
