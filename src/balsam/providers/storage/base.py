"""The storage provider contract.

A storage provider owns buckets and bucket-scoped access keys on an
S3-compatible server. Every create has an inverse so that services can roll
back multi-step operations:

========================  ==========================
create                    undo
========================  ==========================
``create_bucket``         ``delete_bucket``
``put_object``            ``delete_prefix``
``create_key``            ``revoke_key`` / ``revoke_bucket_keys``
========================  ==========================

Inverses are idempotent: undoing something that does not exist (any more) is
not an error. Every method raises :class:`balsam.errors.ProviderError` when
the backend fails; no other exception escapes.

Secrets: the secret half of a key is returned once by ``create_key`` and is
never stored by Balsam; only the storage server keeps it.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class ScopedKey:
    """An access key allowed to use exactly one bucket."""

    access_key: str
    secret_key: str
    bucket: str

    def __repr__(self) -> str:  # never leak the secret into logs
        return f"ScopedKey(access_key={self.access_key!r}, bucket={self.bucket!r})"


class StorageProvider(abc.ABC):
    """Buckets and bucket-scoped keys on an S3 server."""

    #: URL clients (boto3, minio, workspaces) use to reach the S3 API.
    endpoint_url: str
    #: Region name to give to S3 clients.
    region: str = "us-east-1"

    @abc.abstractmethod
    def create_bucket(self, bucket: str) -> None:
        """Create an empty bucket. Raises ProviderError if it exists or fails."""

    @abc.abstractmethod
    def delete_bucket(self, bucket: str) -> None:
        """Delete the bucket and every object in it. Idempotent."""

    @abc.abstractmethod
    def bucket_exists(self, bucket: str) -> bool:
        """Whether the bucket exists."""

    @abc.abstractmethod
    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Write one object (used for branch marker objects)."""

    @abc.abstractmethod
    def delete_prefix(self, bucket: str, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``. Idempotent."""

    @abc.abstractmethod
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Object keys under ``prefix`` (all of them; for admin views and tests)."""

    @abc.abstractmethod
    def create_key(self, bucket: str, *, label: str) -> ScopedKey:
        """Mint a new access key allowed to list, read, write, delete and tag
        objects in ``bucket`` only. ``label`` names the key's owner on the
        storage server (e.g. ``user@project``); it must not be secret."""

    @abc.abstractmethod
    def revoke_key(self, access_key: str) -> None:
        """Revoke the key at once. Idempotent."""

    @abc.abstractmethod
    def revoke_bucket_keys(self, bucket: str, *, keep: Collection[str] = ()) -> int:
        """Revoke every key scoped to ``bucket``, except the owners of keys in
        ``keep``; return how many were revoked. Idempotent.

        The inverse of ``create_key`` when the key's id is unknown (a create
        that failed after the server made the key), a backstop on delete, and
        crash recovery: ``keep`` = the keys Balsam knows, so every key a dead
        process minted and never recorded goes."""

    @abc.abstractmethod
    def key_exists(self, access_key: str) -> bool:
        """Whether the storage server still knows the key."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""
