"""Storage on the embedded SeaweedFS: buckets and objects through S3, keys
through the filer's IAM gRPC service (:mod:`.seaweed_iam_client`).

Why not the IAM API on the S3 port (:class:`S3IamStorage`): it reloads,
rewrites and pushes every identity on each change (14.5 s per call at 10,000
identities), and any key may mint more keys for itself there. The gRPC service
changes one identity per call (milliseconds at 10,000) and only Balsam can
reach it, so ``balsam up`` runs weed with the S3 port's IAM API off.

Every scoped key is an identity of its own, named like :class:`S3IamStorage`
names its IAM users (the label plus a random suffix), holding that one key and
the actions ``Read|Write|List|Tagging:<bucket>``: list, read, write, delete and
tag objects in that bucket, AccessDenied anywhere else. That is the shape the
S3 port's IAM API gave keys made with a bucket policy, so keys minted by an
older Balsam keep working and are found by ``revoke_bucket_keys``. Balsam makes
the key pair itself (CSPRNG); the secret goes to the server and the caller only.

Weed's S3 server learns of a change asynchronously (~5-10 ms), so
``create_key`` polls until the key is accepted and ``revoke_key`` until the
server no longer knows it (a request signed with a wrong secret answers
``InvalidAccessKeyId`` instead of ``SignatureDoesNotMatch``), both bounded by
``key_ready_timeout``. Each change also makes weed reload its identities in
the background (~0.5 s of CPU at 10,000), so bulk revocations are paced.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Collection
from contextlib import suppress
from functools import partial
from pathlib import Path

from balsam.errors import ProviderError
from balsam.providers.storage.base import ScopedKey, check_write_prefix
from balsam.providers.storage.iam_pb import iam_pb2
from balsam.providers.storage.key_probe import KeyProbe
from balsam.providers.storage.s3iam import S3IamStorage, user_name_for
from balsam.providers.storage.seaweed_iam_client import FilerIam

#: What a scoped key may do on its bucket (SeaweedFS action names).
KEY_ACTIONS = ("Read", "Write", "List", "Tagging")
#: What a key of a project over its quota may do: no Write (put, delete, multipart).
READ_ONLY_ACTIONS = ("Read", "List", "Tagging")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
_ACCESS_KEY_LENGTH = 20
#: gRPC codes after which the server may still carry out the call.
_OUTCOME_UNKNOWN = frozenset({"DEADLINE_EXCEEDED", "CANCELLED"})


def new_key_pair() -> tuple[str, str]:
    """A fresh access key (20 characters, ``BK`` + A-Z0-9) and secret (40 URL-safe)."""
    body = "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(_ACCESS_KEY_LENGTH - 2))
    return f"BK{body}", secrets.token_urlsafe(30)


def key_actions(bucket: str, write_prefix: str | None) -> list[str]:
    """The actions of a key scoped to ``bucket``; with ``write_prefix`` it reads and
    lists the bucket and writes and tags only under the prefix (weed matches an
    action's ``bucket/path*`` as a key prefix)."""
    if write_prefix is None:
        return [f"{action}:{bucket}" for action in KEY_ACTIONS]
    return [f"Read:{bucket}", f"List:{bucket}",
            f"Write:{bucket}/{write_prefix}*", f"Tagging:{bucket}/{write_prefix}*"]  # fmt: skip


def _on_a_prefix(identity: iam_pb2.Identity) -> bool:
    """Whether the identity writes only under a prefix (a run's key)."""
    return any("/" in action.partition(":")[2] for action in identity.actions)


def scoped_bucket(identity: iam_pb2.Identity) -> str | None:
    """The one bucket ``identity``'s actions name, if they are all ``<action>:<bucket>``
    for one bucket (keys Balsam made, now or through the S3 port's IAM API)."""
    buckets = {action.partition(":")[2].split("/", 1)[0] for action in identity.actions}
    if len(buckets) != 1 or not all(":" in action for action in identity.actions):
        return None
    bucket = buckets.pop()
    return bucket if _BUCKET_NAME.fullmatch(bucket) else None


class SeaweedIamStorage(S3IamStorage):
    """Buckets and objects as :class:`S3IamStorage` does; keys through ``iam``.

    ``bulk_pause`` seconds pass between two deletions of one
    ``revoke_bucket_keys``, so the S3 server's background reloads keep up."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        admin_access_key: str,
        admin_secret_key: str,
        *,
        iam: FilerIam,
        key_ready_timeout: float = 5.0,
        bulk_pause: float = 0.05,
    ) -> None:
        super().__init__(
            endpoint_url, region, admin_access_key, admin_secret_key,
            key_ready_timeout=key_ready_timeout,
        )  # fmt: skip
        self.iam = iam
        self.bulk_pause = bulk_pause
        # Identity name -> its one bucket (None: not a scoped key). Scopes never
        # change, so revoke_bucket_keys asks the server only about names it has
        # not seen. Guarded by _cache_lock (inherited).
        self._identity_scopes: dict[str, str | None] = {}
        self._scan_lock = threading.Lock()
        self._probe = KeyProbe(endpoint_url, region)

    @classmethod
    def connect(
        cls,
        endpoint_url: str,
        region: str,
        admin_access_key: str,
        admin_secret_key: str,
        *,
        filer_grpc_address: str,
        conf_dir: Path,
    ) -> SeaweedIamStorage:
        """A provider for the embedded weed whose filer gRPC answers at
        ``filer_grpc_address`` and whose ``-config_dir`` is ``conf_dir``."""
        iam = FilerIam(filer_grpc_address, conf_dir)
        return cls(endpoint_url, region, admin_access_key, admin_secret_key, iam=iam)

    def __repr__(self) -> str:  # never the secret
        return f"SeaweedIamStorage(endpoint_url={self.endpoint_url!r}, iam={self.iam!r})"

    # -- scoped keys -----------------------------------------------------------

    def create_key(self, bucket: str, *, label: str, write_prefix: str | None = None) -> ScopedKey:
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ProviderError(f"Invalid bucket name {bucket!r}.")
        check_write_prefix(write_prefix)
        name = user_name_for(label)
        access_key, secret_key = new_key_pair()
        identity = iam_pb2.Identity(
            name=name,
            credentials=[iam_pb2.Credential(access_key=access_key, secret_key=secret_key,
                                            status="Active")],
            actions=key_actions(bucket, write_prefix),
        )  # fmt: skip
        key = ScopedKey(access_key, secret_key, bucket)
        made = False
        try:
            self.iam.call("create key", lambda s: s.CreateUser,
                          iam_pb2.CreateUserRequest(identity=identity))  # fmt: skip
            made = True
            self._remember(name, bucket, [access_key])
            self._wait_until_accepted(key)
        except BaseException as exc:
            self._undo_create(name, access_key, exc, made=made)
            raise
        return key

    def _undo_create(self, name: str, access_key: str, exc: BaseException, *, made: bool) -> None:
        """Delete the identity a failed ``create_key`` made or may have made, and
        mark ``exc`` unsettled where some may be left: the delete failed, or the
        CreateUser call timed out, so weed may still carry it out after the delete
        (it queues calls while paused). The caller's journal then has the bucket
        swept for unrecorded keys. A CreateUser weed refused made nothing (a name
        taken is another key's identity: it is kept); one that never reached weed
        (UNAVAILABLE: weed down) neither."""
        code = exc.details.get("code") if isinstance(exc, ProviderError) else None
        unknown = not made and (not isinstance(exc, ProviderError) or code in _OUTCOME_UNKNOWN)
        if not (made or unknown):
            return
        deleted = False
        with suppress(ProviderError):
            self._delete_identity(name, [access_key])
            deleted = True
        if isinstance(exc, ProviderError) and (unknown or not deleted):
            exc.unsettled = True

    def revoke_key(self, access_key: str) -> None:
        """Delete the identity holding the key (with any other key it has) and
        return once the S3 server refuses the key."""
        if access_key == self.admin_access_key:
            raise ProviderError("Refusing to revoke the storage admin key.")
        identity = self._identity_of(access_key)
        keys = _keys_of(identity) if identity is not None else [access_key]
        if identity is not None:
            self._delete_identity(identity.name, keys)
        self._wait_until_refused(keys)

    def revoke_bucket_keys(self, bucket: str, *, keep: Collection[str] = ()) -> int:
        """Delete every identity scoped to ``bucket`` alone; return how many keys
        they held. One ListUsers call, then GetUser for each name not seen
        before (at 10,000 identities a first scan takes seconds, later ones
        milliseconds); deletions are paced by ``bulk_pause``."""
        revoked: list[str] = []
        with self._scan_lock:
            names = self._names_scoped_to(bucket)
        for index, name in enumerate(names):
            if index:
                time.sleep(self.bulk_pause)
            identity = self._identity(name)
            if identity is None or scoped_bucket(identity) != bucket or _on_a_prefix(identity):
                continue
            held = _keys_of(identity)
            if not set(held) & set(keep):
                revoked += self._delete_identity(name, held)
        self._wait_until_refused(revoked)
        return len(revoked)

    def key_exists(self, access_key: str) -> bool:
        return self._identity_of(access_key) is not None

    def set_bucket_writable(self, bucket: str, writable: bool) -> int:
        """Give every identity scoped to ``bucket`` :data:`KEY_ACTIONS` or
        :data:`READ_ONLY_ACTIONS` (UpdateUser; name and keys unchanged); identities
        that have them already are left alone. Weed applies a change within
        milliseconds (asynchronously)."""
        actions = KEY_ACTIONS if writable else READ_ONLY_ACTIONS
        wanted = [f"{action}:{bucket}" for action in actions]
        changed = 0
        with self._scan_lock:
            names = self._names_scoped_to(bucket)
        for name in names:
            identity = self._identity(name)
            if identity is None or scoped_bucket(identity) != bucket or _on_a_prefix(identity):
                continue
            if sorted(identity.actions) == sorted(wanted):
                continue
            del identity.actions[:]
            identity.actions.extend(wanted)
            self.iam.call("change key rights", lambda s: s.UpdateUser,
                          iam_pb2.UpdateUserRequest(username=name, identity=identity))  # fmt: skip
            changed += 1
        return changed

    def close(self) -> None:
        super().close()
        self._probe.close()
        self.iam.close()

    # -- helpers ---------------------------------------------------------------

    def _identity_of(self, access_key: str) -> iam_pb2.Identity | None:
        """The identity holding ``access_key``. A key this provider minted or saw
        is looked up by its identity's name (one file read); any other with
        GetUserByAccessKey, which reads every identity (~0.1-0.3 s at 10,000).
        A key never moves to another identity, so a remembered name stays right."""
        with self._cache_lock:
            name = self._owners.get(access_key)
        if name is not None:
            identity = self._identity(name)
            return identity if identity and access_key in _keys_of(identity) else None
        reply = self.iam.call("look up key", lambda s: s.GetUserByAccessKey,
                              iam_pb2.GetUserByAccessKeyRequest(access_key=access_key))  # fmt: skip
        found: iam_pb2.Identity | None = reply.identity if reply is not None else None
        if found is None or not found.name:
            return None
        self._remember(found.name, scoped_bucket(found), _keys_of(found))
        return found

    def _identity(self, name: str) -> iam_pb2.Identity | None:
        reply = self.iam.call("look up key owner", lambda s: s.GetUser,
                              iam_pb2.GetUserRequest(username=name))  # fmt: skip
        return None if reply is None else reply.identity

    def _names_scoped_to(self, bucket: str) -> list[str]:
        reply = self.iam.call("list keys", lambda s: s.ListUsers, iam_pb2.ListUsersRequest(),
                              timeout=self.iam.list_timeout)  # fmt: skip
        names = list(reply.usernames) if reply is not None else []
        with self._cache_lock:
            unseen = [name for name in names if name not in self._identity_scopes]
        for name in unseen:
            identity = self._identity(name)
            if identity is not None:
                self._remember(name, scoped_bucket(identity), _keys_of(identity))
        with self._cache_lock:
            return [name for name in names if self._identity_scopes.get(name) == bucket]

    def _remember(self, name: str, bucket: str | None, access_keys: list[str]) -> None:
        if self.admin_access_key in access_keys:
            bucket = None  # never a candidate for revoke_bucket_keys
        with self._cache_lock:
            self._identity_scopes[name] = bucket
            self._owners.update(dict.fromkeys(access_keys, name))

    def _delete_identity(self, name: str, access_keys: list[str]) -> list[str]:
        """Delete identity ``name`` (idempotent); return the keys it held."""
        if self.admin_access_key in access_keys:
            raise ProviderError("Refusing to revoke the storage admin key.")
        self.iam.call("revoke key", lambda s: s.DeleteUser,
                      iam_pb2.DeleteUserRequest(username=name))  # fmt: skip
        with self._cache_lock:
            self._identity_scopes.pop(name, None)
            for access_key in access_keys:
                self._owners.pop(access_key, None)
        return access_keys

    def _wait_until_accepted(self, key: ScopedKey) -> None:
        """Return once the S3 server accepts ``key`` (ProviderError after
        ``key_ready_timeout``)."""
        self._poll("create key", lambda: self._probe.accepted(
            key.access_key, key.secret_key, key.bucket))  # fmt: skip

    def _wait_until_refused(self, access_keys: list[str]) -> None:
        """Return once the S3 server no longer knows any of ``access_keys``."""
        for access_key in access_keys:
            self._poll("revoke key", partial(self._forgotten, access_key))

    def _forgotten(self, access_key: str) -> bool:
        return not self._probe.known(access_key)

    def _poll(self, operation: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.key_ready_timeout
        delay = 0.002
        while not done():
            if time.monotonic() + delay > deadline:
                raise ProviderError(
                    f"Object storage failed to {operation} (not applied within "
                    f"{self.key_ready_timeout:g} s).",
                    details={"operation": operation, "code": "timeout"},
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _keys_of(identity: iam_pb2.Identity) -> list[str]:
    return [credential.access_key for credential in identity.credentials]
