"""Sealing connection secrets: AES-256-GCM with a key that is never in the database.

The key comes from the setting ``connections.key`` (the same on every replica of a
multi-machine installation), or else from ``<data_dir>/secrets/connections.key``,
created on first use (32 random bytes, URL-safe base64, mode 0600 in a 0700 folder,
beside the workspaces' secrets), so a copy of the database alone reveals no secret.

A sealed value is ``v1.<key id>.<base64 of nonce and ciphertext>``: the key id (the
first 8 hex digits of the key's SHA-256) says which key sealed it, so keys can be
rotated: the new key in ``connections.key``, the old one in
``connections.previous_keys`` until :func:`reseal` has sealed every value again. The
associated data binds a sealed value to its project, name and kind: moved to another
row, it no longer opens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from balsam.errors import N_, BalsamError, Conflict
from balsam.private_files import create_once
from balsam.settings import Settings

KEY_FILE = Path("secrets") / "connections.key"
_VERSION = "v1"
_NONCE = 12


class KeyUnusable(BalsamError):
    """The configured key (setting or file) is not 32 bytes of URL-safe base64."""

    reason = "connection-key-unusable"


class SecretUnreadable(Conflict):
    """A sealed secret does not open with any key this installation holds (another
    key, or a value that was altered or moved)."""

    reason = "connection-secret-unreadable"


@dataclass(frozen=True)
class KeyRing:
    """The key that seals, and every key that may open."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def by_id(self, key_id: str) -> bytes | None:
        for key in (self.current, *self.previous):
            if key_id_of(key) == key_id:
                return key
        return None


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != 32:
        raise KeyUnusable("The connections key is not 32 bytes of URL-safe base64.")
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def key_ring(settings: Settings) -> KeyRing:
    """The installation's keys: the setting's, else the data directory's key file
    (created now if missing)."""
    conf = settings.connections
    previous = tuple(decode_key(k.get_secret_value()) for k in conf.previous_keys)
    if conf.key is not None:
        return KeyRing(decode_key(conf.key.get_secret_value()), previous)
    return KeyRing(decode_key(_load_or_create(settings.data_dir.resolve() / KEY_FILE)), previous)


def _load_or_create(path: Path) -> str:
    if not path.exists():
        create_once(path, new_key_text() + "\n")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path.read_text(encoding="ascii")


def seal(ring: KeyRing, secret: str, bound_to: str) -> str:
    """``secret`` sealed with the current key, opening only with ``bound_to``."""
    nonce = secrets.token_bytes(_NONCE)
    sealed = AESGCM(ring.current).encrypt(nonce, secret.encode("utf-8"), bound_to.encode())
    body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    return f"{_VERSION}.{key_id_of(ring.current)}.{body}"


def unseal(ring: KeyRing, sealed: str, bound_to: str) -> str:
    """The secret; :class:`SecretUnreadable` if no key of ``ring`` opens it for
    ``bound_to``."""
    version, _, rest = sealed.partition(".")
    key_id, _, body = rest.partition(".")
    key = ring.by_id(key_id) if version == _VERSION else None
    try:
        if key is None:
            raise InvalidTag
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], bound_to.encode())
        return plain.decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError, UnicodeError):
        raise SecretUnreadable(
            N_(
                "The connection's secret cannot be opened with this installation's key; "
                "delete the connection and create it again."
            )
        ) from None


def is_current(ring: KeyRing, sealed: str) -> bool:
    return sealed.split(".")[1:2] == [key_id_of(ring.current)]
