"""A client of the embedded SeaweedFS filer's IAM gRPC service.

The service (``iam_pb.SeaweedIdentityAccessManagement`` on the filer's gRPC
port) changes one identity per call, in milliseconds whatever their number.
It is closed to everyone but Balsam twice over:

* mutual TLS: weed's gRPC listeners accept only certificates of its private CA
  with an allowed common name (Balsam's is ``balsam``; see
  :mod:`balsam.embedded.seaweed_pki`);
* a filer admin JWT on the ``authorization`` metadata (``Bearer <token>``):
  HS256 over ``{"exp": ...}``, signed with the ``[jwt.filer_signing]`` key of
  weed's ``security.toml`` (SeaweedFS's ``SeaweedFilerAdminClaims``). A token
  is minted per call (an HMAC: microseconds), valid for a minute.

The channel is long-lived and thread-safe. Before each call the client looks at
the CA, its certificate, its key and the JWT keys in ``conf_dir`` (four
``stat`` calls) and rebuilds the channel when one changed, so a rotation
(:func:`balsam.embedded.seaweed_pki.rotate_pki`, or the fresh certificates of
every weed start) needs no restart of Balsam.

Every call has a deadline; every gRPC failure becomes a ProviderError, except
``NOT_FOUND``, which :meth:`FilerIam.call` returns as ``None`` so callers can
make inverses idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from balsam.embedded.seaweed_pki import CLIENT_COMMON_NAME, client_tls, filer_jwt_key
from balsam.errors import ProviderError
from balsam.providers.storage.iam_pb import iam_pb2_grpc

Reply = TypeVar("Reply", bound=Message)
_TOKEN_TTL_S = 60
_WATCHED = ("ca.crt", f"{CLIENT_COMMON_NAME}.crt", f"{CLIENT_COMMON_NAME}.key", "jwt.json")


def filer_admin_token(signing_key: str, *, ttl_s: int = _TOKEN_TTL_S, now: float | None = None
                      ) -> str:  # fmt: skip
    """A filer admin JWT (HS256, claim ``exp`` only) signed with ``signing_key``."""
    expires = int((time.time() if now is None else now) + ttl_s)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = _b64(json.dumps({"exp": expires}, separators=(",", ":")).encode())
    signed = header + b"." + claims
    signature = hmac.new(signing_key.encode(), signed, hashlib.sha256).digest()
    return (signed + b"." + _b64(signature)).decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class FilerIam:
    """The filer's IAM gRPC service at ``address`` (``127.0.0.1:<filer gRPC
    port>``), reached as Balsam with the certificate and JWT key in ``conf_dir``.

    ``timeout`` is the deadline of an ordinary call in seconds (each changes one
    identity in milliseconds: the bound is for a paused or hung filer; a first
    call on a new channel to such a filer may take twice as long); ``list_timeout``
    that of ListUsers (one reply with every identity name)."""

    def __init__(
        self, address: str, conf_dir: Path, *, timeout: float = 3.0, list_timeout: float = 10.0
    ) -> None:
        self.address = address
        self.conf_dir = conf_dir
        self.timeout = timeout
        self.list_timeout = list_timeout
        self._lock = threading.Lock()
        self._fingerprint: tuple[tuple[int, int], ...] | None = None
        self._channel: grpc.Channel | None = None
        # The generated stub is untyped; ``call``'s ``method`` gives each reply its type.
        self._stub: Any = None
        self._signing_key = ""

    def __repr__(self) -> str:  # never the signing key
        return f"FilerIam(address={self.address!r}, conf_dir={str(self.conf_dir)!r})"

    def call(
        self,
        operation: str,
        method: Callable[[Any], Callable[..., Reply]],
        request: Message,
        *,
        timeout: float | None = None,
    ) -> Reply | None:
        """Call ``method(stub)(request)`` with a deadline and a fresh admin token.
        Returns None when the server answers NOT_FOUND; raises ProviderError
        (naming ``operation`` and the gRPC status) on any other failure."""
        stub, token = self._current()
        try:
            return method(stub)(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=(("authorization", f"Bearer {token}"),),
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code == grpc.StatusCode.NOT_FOUND:
                return None
            raise ProviderError(
                f"Object storage failed to {operation} ({code.name}).",
                details={"operation": operation, "code": code.name},
            ) from exc

    def close(self) -> None:
        """Close the channel; a later call opens a new one."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None
            self._fingerprint = None

    def _current(self) -> tuple[Any, str]:
        with self._lock:
            fingerprint = self._files_fingerprint()
            if self._stub is None or fingerprint != self._fingerprint:
                self._connect(fingerprint)
            assert self._stub is not None
            return self._stub, filer_admin_token(self._signing_key)

    def _files_fingerprint(self) -> tuple[tuple[int, int], ...]:
        try:
            stats = [(self.conf_dir / name).stat() for name in _WATCHED]
        except OSError as exc:
            raise _missing_credentials(self.conf_dir, exc) from exc
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def _connect(self, fingerprint: tuple[tuple[int, int], ...]) -> None:
        """(Re)open the channel with the credentials now in ``conf_dir``."""
        try:
            tls = client_tls(self.conf_dir)
            self._signing_key = filer_jwt_key(self.conf_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise _missing_credentials(self.conf_dir, exc) from exc
        if self._channel is not None:
            self._channel.close()
        credentials = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
        self._channel = grpc.secure_channel(self.address, credentials)
        stub_class = iam_pb2_grpc.SeaweedIdentityAccessManagementStub
        self._stub = stub_class(self._channel)  # type: ignore[no-untyped-call]  # generated
        self._fingerprint = fingerprint


def _missing_credentials(conf_dir: Path, exc: Exception) -> ProviderError:
    return ProviderError(
        "Object storage credentials are missing or unreadable.",
        details={"operation": "connect", "code": type(exc).__name__, "conf_dir": str(conf_dir)},
    )
