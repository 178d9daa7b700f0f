"""Storage on an S3 server that implements the AWS IAM user API.

Works with SeaweedFS (its IAM API on the S3 port, ``-s3.iam.readOnly=false``)
and is written against the AWS API, so it should work with AWS too.

Every scoped key is an IAM user of its own, named after the key's label plus a
random suffix, with one inline policy that allows the object operations
clients need on exactly one bucket. Revoking a key deletes that whole user:
SeaweedFS lets any user mint more keys for itself through the IAM API, so
deleting only the one key would leave such copies working.

Notes on SeaweedFS (4.48): its policy parser rejects some AWS action names
(``s3:ListMultipartUploadParts``, ``s3:ListBucketMultipartUploads``), so the
policy only uses names both servers accept; multipart uploads still work
(``s3:PutObject`` covers them there). It generates key pairs with a CSPRNG.

Versions (SeaweedFS 4.48 as AWS): ``ListObjectVersions`` answers on unversioned
buckets too (version id ``null``); deleting a key that has no current object
still writes a delete marker, so ``retire_prefix`` deletes only keys it listed.
SeaweedFS deletes a bucket that holds only noncurrent versions (AWS refuses),
but ``delete_bucket`` removes every version first on both.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterable, Iterator
from contextlib import suppress
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from balsam.errors import ProviderError
from balsam.providers.storage.base import (
    ObjectVersion,
    ScopedKey,
    StorageProvider,
    check_write_prefix,
)
from balsam.providers.storage.calls import backend as _backend
from balsam.providers.storage.calls import error_code as _error_code
from balsam.providers.storage.objects import S3ObjectStore

POLICY_NAME = "balsam-bucket-access"
BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation")
OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
    "s3:DeleteObjectTagging",
    "s3:AbortMultipartUpload",
)
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_NOT_IAM_NAME_CHARS = re.compile(r"[^A-Za-z0-9_+=,.@-]")
_IAM_NAME_MAX = 64
_S3_ARN = "arn:aws:s3:::"
_NO_BUCKET = ("NoSuchBucket", "404")
_NO_ENTITY = ("NoSuchEntity",)
_NOT_SUPPORTED = ("NotImplemented", "501")
_DELETE_BATCH = 1000
_ENABLED = {"Status": "Enabled"}


def _is(exc: ClientError, codes: tuple[str, ...]) -> bool:
    return _error_code(exc) in codes


#: What a key of a project over its quota may still do with objects (tags are
#: metadata of bounded size, not data: left alone).
READ_ONLY_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
    "s3:DeleteObjectTagging",
)


def bucket_policy(bucket: str, *, writable: bool = True, write_prefix: str | None = None) -> str:
    """The inline policy of a key scoped to ``bucket`` (JSON); ``writable`` False:
    the objects can be listed and read, not written or deleted; ``write_prefix``: read
    everywhere in the bucket, write only under the prefix."""
    objects = {
        "Effect": "Allow",
        "Action": list(OBJECT_ACTIONS if writable else READ_ONLY_OBJECT_ACTIONS),
        "Resource": [f"arn:aws:s3:::{bucket}/*"],
    }
    if write_prefix is not None:
        objects = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectTagging"],
                   "Resource": [f"arn:aws:s3:::{bucket}/*"]}  # fmt: skip
        prefixed = {
            "Effect": "Allow",
            "Action": list(OBJECT_ACTIONS),
            "Resource": [f"arn:aws:s3:::{bucket}/{write_prefix}*"],
        }
    statements = [
        {"Effect": "Allow", "Action": list(BUCKET_ACTIONS), "Resource": [f"arn:aws:s3:::{bucket}"]},
        objects,
        *([prefixed] if write_prefix is not None else []),
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def on_a_prefix(document: Any) -> bool:
    """Whether a Balsam policy document writes only under a prefix (a run's key)."""
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement", [])
    for statement in [statements] if isinstance(statements, dict) else statements:
        resources = statement.get("Resource", [])
        for resource in [resources] if isinstance(resources, str) else resources:
            path = resource[len(_S3_ARN) :].partition("/")[2]
            if resource.startswith(_S3_ARN) and path not in ("", "*"):
                return True
    return False


def policy_buckets(document: Any) -> set[str]:
    """Bucket names in the S3 resources of a policy document (a dict, or JSON
    that may be URL-encoded, as AWS returns it)."""
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement", [])
    buckets: set[str] = set()
    for statement in [statements] if isinstance(statements, dict) else statements:
        resources = statement.get("Resource", [])
        for resource in [resources] if isinstance(resources, str) else resources:
            if resource.startswith(_S3_ARN):
                buckets.add(resource[len(_S3_ARN) :].split("/", 1)[0])
    return buckets


def user_name_for(label: str) -> str:
    """A fresh IAM user name: ``label`` made IAM-safe, then ``-`` and 8 random
    hex digits; at most 64 characters."""
    suffix = secrets.token_hex(4)
    stem = _NOT_IAM_NAME_CHARS.sub("-", label)[: _IAM_NAME_MAX - len(suffix) - 1] or "key"
    return f"{stem}-{suffix}"


def _object_version(item: dict[str, Any], *, is_delete_marker: bool) -> ObjectVersion:
    return ObjectVersion(
        key=str(item["Key"]),
        version_id=str(item["VersionId"]),
        last_modified=item["LastModified"],
        is_latest=bool(item.get("IsLatest")),
        is_delete_marker=is_delete_marker,
        size=int(item.get("Size", 0)),
    )


def _page_versions(page: dict[str, Any]) -> list[ObjectVersion]:
    """A ListObjectVersions page's versions and delete markers, in one list."""
    return [
        *(_object_version(item, is_delete_marker=False) for item in page.get("Versions", [])),
        *(_object_version(item, is_delete_marker=True) for item in page.get("DeleteMarkers", [])),
    ]


def _newest_first(versions: list[ObjectVersion]) -> list[ObjectVersion]:
    """By key; each key's current entry first, then newest to oldest. The sort is
    stable, so entries of one second (the servers' resolution) keep their order."""
    return sorted(versions, key=lambda v: (v.key, not v.is_latest, -v.last_modified.timestamp()))


def _version_ids(versions: Iterable[ObjectVersion]) -> Iterator[dict[str, str]]:
    return ({"Key": v.key, "VersionId": v.version_id} for v in versions)


def _batches(items: Iterator[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    batch: list[dict[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _private_channel(endpoint_url: str) -> bool:
    """Whether nothing between Balsam and the S3 server can change a request's body:
    TLS, or this machine's loopback (the embedded server). Over plain HTTP elsewhere
    botocore signs every body's SHA-256 (one more pass over each part uploaded and
    object written, about a tenth of an upload's time here: bench_data_upload_memory);
    on such a channel it need not."""
    parts = urllib.parse.urlsplit(endpoint_url)
    if parts.scheme == "https":
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return parts.hostname == "localhost"


class S3IamStorage(StorageProvider):
    """Buckets through the S3 API, scoped keys through the IAM API, both at
    ``endpoint_url`` with the admin key.

    Clients fail fast: ``connect_timeout`` seconds to connect, ``read_timeout``
    for a response, and one retry, so a paused or unreachable server holds a
    call about 2 x (1.5 + 4) s at most, not minutes (the control plane makes
    metadata calls only; data transfers go from clients to S3 directly).
    ``create_key`` returns only once the storage server accepts the new key
    (polling for at most ``key_ready_timeout`` seconds; SeaweedFS needs no
    wait, AWS may), else it undoes the key and raises ProviderError.
    """

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        admin_access_key: str,
        admin_secret_key: str,
        *,
        connect_timeout: float = 1.5,
        read_timeout: float = 4.0,
        key_ready_timeout: float = 10.0,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.admin_access_key = admin_access_key
        self._admin_secret_key = admin_secret_key
        self.key_ready_timeout = key_ready_timeout
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()  # creating clients is not thread-safe
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": 2},
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._s3 = self._client("s3", admin_access_key, admin_secret_key)
        self._iam = self._client("iam", admin_access_key, admin_secret_key)
        # Data moves with a minute per read (the metadata client fails fast).
        self._objects = S3ObjectStore(
            self._client(
                "s3",
                admin_access_key,
                admin_secret_key,
                config=self._config.merge(
                    Config(
                        read_timeout=60,
                        retries={"total_max_attempts": 1},
                        s3={
                            "addressing_style": "path",
                            "payload_signing_enabled": not _private_channel(endpoint_url),
                        },
                    )
                ),
            )
        )
        # Access key -> IAM user, for keys this process minted or has seen. IAM
        # has no reverse lookup, and listing every user's keys costs one call
        # per user: with it, revoking a key is a few calls, not a few hundred.
        # An entry can only go stale by the user being deleted elsewhere, which
        # deleting again tolerates.
        self._owners: dict[str, str] = {}
        self._scopes: dict[str, str | None] = {}  # IAM user -> its one bucket (never changes)
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return (
            f"S3IamStorage(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"admin_access_key={self.admin_access_key!r})"
        )

    # -- buckets and objects ---------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        options: dict[str, Any] = {}
        if self.region != "us-east-1":  # AWS refuses the constraint for us-east-1
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with _backend("create bucket"):
            self._s3.create_bucket(Bucket=bucket, **options)
        try:
            self.enable_versioning(bucket)
        except ProviderError:  # a bucket that would not keep versions is not made
            with suppress(ProviderError):
                self.delete_bucket(bucket)
            raise

    def enable_versioning(self, bucket: str) -> bool:
        """Reads the state first: the usual answer (on) costs no write."""
        with _backend("enable versioning"):
            state = self._s3.get_bucket_versioning(Bucket=bucket).get("Status")
            if state == _ENABLED["Status"]:
                return False
            self._s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=_ENABLED)
        return True

    def delete_bucket(self, bucket: str) -> None:
        with _backend("delete bucket"):
            try:
                self._delete_objects(bucket, prefix="")
                self._abort_uploads(bucket)
                self._s3.delete_bucket(Bucket=bucket)
            except ClientError as exc:
                if not _is(exc, _NO_BUCKET):
                    raise

    def bucket_exists(self, bucket: str) -> bool:
        with _backend("look up bucket"):
            try:
                self._s3.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if _is(exc, _NO_BUCKET):
                    return False
                raise
        return True

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        try:
            with _backend("write object"):
                self._s3.put_object(Bucket=bucket, Key=key, Body=data)
        except ProviderError as exc:
            # Sent but unanswered (a paused server): it may still be carried out.
            exc.unsettled = isinstance(exc.__cause__, ReadTimeoutError)
            raise

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        with _backend("delete objects"):
            try:
                self._delete_objects(bucket, prefix)
            except ClientError as exc:
                if not _is(exc, _NO_BUCKET):
                    raise

    def retire_prefix(self, bucket: str, prefix: str) -> int:
        """Sets versioning on every time (one write) rather than trusting a
        cached state: a key holder may have suspended it since."""
        with _backend("retire objects"):
            try:
                self._s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=_ENABLED)
                keys = ({"Key": key} for key in self._keys(bucket, prefix))
                return self._delete_batches(bucket, keys)
            except ClientError as exc:
                if _is(exc, _NO_BUCKET):
                    return 0
                raise

    def list_versions(self, bucket: str, prefix: str = "") -> list[ObjectVersion]:
        with _backend("list versions"):
            paginator = self._s3.get_paginator("list_object_versions")
            pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
            return _newest_first([v for page in pages for v in _page_versions(page)])

    def purge_versions(self, bucket: str, versions: Iterable[ObjectVersion]) -> int:
        with _backend("purge versions"):
            return self._delete_batches(bucket, _version_ids(versions))

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        with _backend("list objects"):
            return list(self._keys(bucket, prefix))

    def _keys(self, bucket: str, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def _versions(self, bucket: str, prefix: str) -> Iterator[dict[str, str]]:
        """Every version and delete marker under ``prefix``; plain keys where
        the server does not implement versions."""
        try:
            paginator = self._s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                yield from _version_ids(_page_versions(page))
        except ClientError as exc:
            if not _is(exc, _NOT_SUPPORTED):
                raise
            yield from ({"Key": key} for key in self._keys(bucket, prefix))

    def _delete_objects(self, bucket: str, prefix: str) -> None:
        self._delete_batches(bucket, self._versions(bucket, prefix))

    def _delete_batches(self, bucket: str, objects: Iterator[dict[str, str]]) -> int:
        """DeleteObjects in batches (a key alone writes a delete marker in a
        versioned bucket; a key and version id destroys that version); return
        how many were asked for. Raises ProviderError on any failure but a
        missing key."""
        count = 0
        for batch in _batches(objects, _DELETE_BATCH):
            reply = self._s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            failed = [e for e in reply.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if failed:
                raise ProviderError(
                    f"Object storage failed to delete {len(failed)} objects "
                    f"({failed[0].get('Code')}).",
                    details={"operation": "delete objects", "code": failed[0].get("Code")},
                )
            count += len(batch)
        return count

    def _abort_uploads(self, bucket: str) -> None:
        try:
            paginator = self._s3.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=bucket):
                for upload in page.get("Uploads", []):
                    self._s3.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        except ClientError as exc:
            if not _is(exc, _NOT_SUPPORTED):
                raise

    # -- scoped keys -----------------------------------------------------------

    def create_key(self, bucket: str, *, label: str, write_prefix: str | None = None) -> ScopedKey:
        if not _BUCKET_NAME.fullmatch(bucket):  # it goes into a policy ARN
            raise ProviderError(f"Invalid bucket name {bucket!r}.")
        check_write_prefix(write_prefix)
        user = user_name_for(label)
        try:
            with _backend("create key"):
                self._iam.create_user(UserName=user)
                return self._mint_key(user, bucket, write_prefix)
        except BaseException as exc:
            try:
                with _backend("undo create key"):
                    self._delete_user(user)
            except ProviderError:  # the user may outlive this call: the caller sweeps
                if isinstance(exc, ProviderError):
                    exc.unsettled = True
            raise

    def revoke_key(self, access_key: str) -> None:
        """Delete the key's IAM user with every key and policy it has."""
        if access_key == self.admin_access_key:
            raise ProviderError("Refusing to revoke the storage admin key.")
        with _backend("revoke key"):
            user = self._owner_of(access_key)
            if user is not None:
                self._delete_user(user)

    def revoke_bucket_keys(self, bucket: str, *, keep: Collection[str] = ()) -> int:
        """Delete every IAM user whose Balsam policy names ``bucket`` and no
        other bucket, with all their keys; return how many keys that was."""
        revoked = 0
        with _backend("revoke bucket keys"):
            for user in self._users():
                if self._scoped_bucket(user) != bucket:
                    continue
                held = set(self._access_keys(user))
                if self.admin_access_key not in held and not held & set(keep):
                    revoked += self._delete_user(user)
        return revoked

    def key_exists(self, access_key: str) -> bool:
        with _backend("look up key"):
            return self._owner_of(access_key) is not None

    def set_bucket_writable(self, bucket: str, writable: bool) -> int:
        """Put the (read-only or full) bucket policy on every user scoped to ``bucket``
        (a run's key, writing under its prefix only, is left as it is)."""
        changed = 0
        with _backend("change key rights"):
            for user in self._users():
                if self._scoped_bucket(user) == bucket and not self._on_a_prefix(user):
                    self._iam.put_user_policy(
                        UserName=user,
                        PolicyName=POLICY_NAME,
                        PolicyDocument=bucket_policy(bucket, writable=writable),
                    )
                    changed += 1
        return changed

    def close(self) -> None:
        self._objects.close()
        self._s3.close()
        self._iam.close()

    @property
    def objects(self) -> S3ObjectStore:
        return self._objects

    def _client(
        self, service: str, access_key: str, secret_key: str, config: Config | None = None
    ) -> Any:
        with self._session_lock:
            return self._session.client(
                service,
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config or self._config,
            )

    def _mint_key(self, user: str, bucket: str, write_prefix: str | None = None) -> ScopedKey:
        """Give ``user`` the bucket policy, then (so the key is never usable
        without it) a key; return once the server accepts the key."""
        policy = bucket_policy(bucket, write_prefix=write_prefix)
        self._iam.put_user_policy(UserName=user, PolicyName=POLICY_NAME, PolicyDocument=policy)
        created = self._iam.create_access_key(UserName=user)["AccessKey"]
        key = ScopedKey(str(created["AccessKeyId"]), str(created["SecretAccessKey"]), bucket)
        with self._cache_lock:
            self._owners[key.access_key] = user
            self._scopes[user] = bucket
        self._wait_until_accepted(key)
        return key

    def _wait_until_accepted(self, key: ScopedKey) -> None:
        """Poll HeadBucket with the new key until the server knows it (404
        counts: the request was authenticated, the bucket is just missing)."""
        client = self._client("s3", key.access_key, key.secret_key)
        deadline = time.monotonic() + self.key_ready_timeout
        delay = 0.02
        try:
            while True:
                try:
                    client.head_bucket(Bucket=key.bucket)
                    return
                except ClientError as exc:
                    if _is(exc, _NO_BUCKET):
                        return
                    if time.monotonic() + delay > deadline:
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        finally:
            client.close()

    def _users(self) -> Iterator[str]:
        for page in self._iam.get_paginator("list_users").paginate():
            for user in page.get("Users", []):
                yield str(user["UserName"])

    def _owner_of(self, access_key: str) -> str | None:
        """The IAM user holding ``access_key``. IAM has no reverse lookup that
        SeaweedFS implements: a known key is checked with one call; an unknown
        one lists users and their keys, remembering every key it sees."""
        with self._cache_lock:
            known = self._owners.get(access_key)
        if known is not None:
            if access_key in self._access_keys(known):
                return known
            with self._cache_lock:
                self._owners.pop(access_key, None)
        found = None
        for user in self._users():
            keys = self._access_keys(user)
            with self._cache_lock:
                self._owners.update(dict.fromkeys(keys, user))
            if access_key in keys:
                found = user
        return found

    def _on_a_prefix(self, user: str) -> bool:
        reply = self._iam.get_user_policy(UserName=user, PolicyName=POLICY_NAME)
        return on_a_prefix(reply["PolicyDocument"])

    def _scoped_bucket(self, user: str) -> str | None:
        """The one bucket ``user``'s Balsam policy names, if it names one.
        Remembered: Balsam never changes a user's policy once its key exists."""
        with self._cache_lock:
            if user in self._scopes:
                return self._scopes[user]
        try:
            reply = self._iam.get_user_policy(UserName=user, PolicyName=POLICY_NAME)
        except ClientError as exc:
            if _is(exc, _NO_ENTITY):
                return None
            raise
        buckets = policy_buckets(reply["PolicyDocument"])
        bucket = buckets.pop() if len(buckets) == 1 else None
        with self._cache_lock:
            self._scopes[user] = bucket
        return bucket

    def _access_keys(self, user: str) -> list[str]:
        try:
            pages = list(self._iam.get_paginator("list_access_keys").paginate(UserName=user))
        except ClientError as exc:
            if _is(exc, _NO_ENTITY):  # deleted meanwhile
                return []
            raise
        return [str(k["AccessKeyId"]) for page in pages for k in page["AccessKeyMetadata"]]

    def _delete_user(self, user: str) -> int:
        """Delete ``user``'s keys and inline policies, then the user (AWS
        refuses to delete a user that still has them); return how many keys
        it had. Idempotent. Never deletes the holder of the admin key."""
        keys = self._access_keys(user)
        if self.admin_access_key in keys:
            raise ProviderError("Refusing to revoke the storage admin key.")
        try:
            for access_key in keys:
                self._iam.delete_access_key(UserName=user, AccessKeyId=access_key)
            for page in self._iam.get_paginator("list_user_policies").paginate(UserName=user):
                for policy in page.get("PolicyNames", []):
                    self._iam.delete_user_policy(UserName=user, PolicyName=policy)
            self._iam.delete_user(UserName=user)
        except ClientError as exc:
            if not _is(exc, _NO_ENTITY):
                raise
        with self._cache_lock:
            self._scopes.pop(user, None)
            for access_key in keys:
                self._owners.pop(access_key, None)
        return len(keys)
