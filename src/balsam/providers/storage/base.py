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

Buckets keep versions (S3 bucket versioning): ``create_bucket`` enables it,
``enable_versioning`` turns it on for buckets made before (idempotent). Deleting
an object then leaves its data as noncurrent versions under a delete marker;
``retire_prefix`` deletes that way, ``delete_prefix`` and ``delete_bucket``
destroy every version. Only ``purge_versions`` removes chosen versions for
good; which ones (the retention rule) is the domain's decision.

Secrets: the secret half of a key is returned once by ``create_key`` and is
never stored by Balsam; only the storage server keeps it.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from balsam.errors import ProviderError
from balsam.providers.storage.objects import S3ObjectStore

_WRITE_PREFIX = re.compile(r"(?:[A-Za-z0-9._-]+/)+")


def check_write_prefix(prefix: str | None) -> None:
    """ProviderError unless ``prefix`` is None or plain folders ending in ``/`` (it goes
    into a policy: no wildcards, no ``..``)."""
    if prefix is not None and (
        not _WRITE_PREFIX.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/")[:-1])
    ):
        raise ProviderError(f"Invalid key prefix {prefix!r}.")


@dataclass(frozen=True)
class ScopedKey:
    """An access key allowed to use exactly one bucket."""

    access_key: str
    secret_key: str
    bucket: str

    def __repr__(self) -> str:  # never leak the secret into logs
        return f"ScopedKey(access_key={self.access_key!r}, bucket={self.bucket!r})"


@dataclass(frozen=True)
class ObjectVersion:
    """One version of an object, or a delete marker, in a versioned bucket."""

    key: str
    version_id: str
    #: When this version (or marker) was written; timezone-aware (UTC).
    last_modified: datetime
    #: Whether it is the key's current entry (a current delete marker hides the key).
    is_latest: bool
    is_delete_marker: bool
    size: int = 0


class StorageProvider(abc.ABC):
    """Buckets and bucket-scoped keys on an S3 server."""

    #: URL clients (boto3, minio, workspaces) use to reach the S3 API.
    endpoint_url: str
    #: Region name to give to S3 clients.
    region: str = "us-east-1"

    @abc.abstractmethod
    def create_bucket(self, bucket: str) -> None:
        """Create an empty bucket that keeps versions. Raises ProviderError if it
        exists or fails (then no bucket of Balsam's making is left)."""

    @abc.abstractmethod
    def enable_versioning(self, bucket: str) -> bool:
        """Make ``bucket`` keep versions; return whether it did not before.
        Idempotent; raises ProviderError when the server cannot keep versions."""

    @abc.abstractmethod
    def delete_bucket(self, bucket: str) -> None:
        """Delete the bucket and every object, version and delete marker in it.
        Idempotent."""

    @abc.abstractmethod
    def bucket_exists(self, bucket: str) -> bool:
        """Whether the bucket exists."""

    @abc.abstractmethod
    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Write one object (used for branch marker objects)."""

    @abc.abstractmethod
    def delete_prefix(self, bucket: str, prefix: str) -> None:
        """Destroy every object under ``prefix``, with all its versions and delete
        markers. Idempotent. For undoing a create nobody used; deleting users'
        data goes through ``retire_prefix``."""

    @abc.abstractmethod
    def retire_prefix(self, bucket: str, prefix: str) -> int:
        """Delete the current objects under ``prefix`` so they vanish from
        listings and reads, keeping their data as noncurrent versions; return
        how many were retired. Enables versioning first, so it never destroys
        data (raises ProviderError where the server cannot keep versions).
        Idempotent; a missing bucket retires nothing."""

    @abc.abstractmethod
    def list_versions(self, bucket: str, prefix: str = "") -> list[ObjectVersion]:
        """Every version and delete marker under ``prefix``, by key, each key's
        current entry first, then newest to oldest (ties in the server's order)."""

    @abc.abstractmethod
    def purge_versions(self, bucket: str, versions: Iterable[ObjectVersion]) -> int:
        """Permanently delete exactly these versions and delete markers (current
        ones too: choosing is the caller's job); return how many were asked for.
        Idempotent: versions already gone are not an error."""

    @abc.abstractmethod
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Current object keys under ``prefix`` (all of them; for admin views and
        tests)."""

    @abc.abstractmethod
    def create_key(self, bucket: str, *, label: str, write_prefix: str | None = None) -> ScopedKey:
        """Mint a new access key allowed to list, read, write, delete and tag
        objects in ``bucket`` only. ``label`` names the key's owner on the
        storage server (e.g. ``user@project``); it must not be secret.

        ``write_prefix`` (a run's key, ``runs/<id>/``): the key lists and reads the
        whole bucket but writes, deletes and tags only keys under that prefix.
        ``set_bucket_writable`` leaves such keys as they are (they live as long as
        one run)."""

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

    @abc.abstractmethod
    def set_bucket_writable(self, bucket: str, writable: bool) -> int:
        """Let every key scoped to ``bucket`` write and delete objects again, or
        (``writable`` False, a project over its quota) only list, read and tag them;
        return how many keys were changed. Idempotent. Keys minted afterwards can
        write: the caller applies it again to them."""

    @property
    def objects(self) -> S3ObjectStore:
        """Reading and writing objects themselves (the data API); providers that move
        no data raise ProviderError."""
        raise ProviderError("This storage provider does not move data.")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""
