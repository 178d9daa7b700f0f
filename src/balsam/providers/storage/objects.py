"""Objects in project buckets, for the control plane's own data API (browse, read,
write, delete, versions, restore, usage).

Separate from the key and bucket management of :class:`~.s3iam.S3IamStorage`: that
client fails fast (metadata calls only), this one moves data and allows a minute per
read. Writes stream: a body arrives as chunks and leaves in parts of
:data:`PART_SIZE` (multipart upload), a few sent side by side, so memory per upload
stays at a few parts whatever the object's size; whole downloads are fetched in
ranges side by side; an upload that fails or is abandoned is aborted, and S3 shows a
multipart object only once it is completed, so nothing partial is ever visible.

Every method raises :class:`balsam.errors.ProviderError` when the backend fails, and
answers None (or an empty listing) for an object or bucket that is not there.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import itertools
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from balsam.errors import ProviderError
from balsam.providers.storage.calls import backend, error_code

#: Size of each part of a multipart upload (S3's minimum is 5 MiB).
PART_SIZE = 8 * 1024 * 1024
_MISSING = ("NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NoSuchUpload", "404", "NotFound")
#: The largest object S3 copies in one request (5 GB); larger ones go in parts.
MAX_SINGLE_COPY = 5 * 1000**3
#: What a call on a multipart upload that is no more answers.
UPLOAD_GONE = "NoSuchUpload"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    version_id: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Part:
    """A part of a multipart upload, as the server holds it."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class Completed:
    """A multipart upload made visible: the object's version id and ETag."""

    version: str | None
    etag: str


_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


def multipart_etag(parts: builtins.list[Part]) -> str | None:
    """The ETag S3 gives the object completed from ``parts``: the MD5 of their MD5s,
    then ``-<count>``. None when a part's ETag is no MD5 (some servers' encryption at
    rest): the object's ETag then says nothing about which parts it holds."""
    digests = []
    for part in parts:
        tag = part.etag.strip('"').lower()
        if not _MD5_HEX.match(tag):
            return None
        digests.append(bytes.fromhex(tag))
    joined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(parts)}"


@dataclass(frozen=True)
class Listing:
    objects: list[ObjectInfo]
    #: Common prefixes ("folders") directly under the listed prefix, each ending in "/".
    prefixes: list[str]
    #: Where the next page starts (a key), when there is one.
    next_after: str | None = None


class _Missing(Exception):
    """The object, version or bucket is not there (answered as None or empty)."""


@contextlib.contextmanager
def _storage(operation: str) -> Iterator[None]:
    """As :func:`~.calls.backend`, with an object, version or bucket that is not there
    raised as :class:`_Missing` (the callers answer None or an empty listing)."""
    with backend(operation):
        try:
            yield
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise _Missing from exc
            raise


def _listed(item: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(str(item["Key"]), int(item["Size"]), item["LastModified"])


def _info(key: str, answer: dict[str, Any]) -> ObjectInfo:
    version = answer.get("VersionId")
    return ObjectInfo(
        key=key,
        size=int(answer.get("ContentLength", answer.get("Size", 0))),
        last_modified=answer["LastModified"],
        version_id=None if version in (None, "null") else str(version),
        content_type=answer.get("ContentType"),
    )


class S3ObjectStore:
    """Objects through an S3 client (boto3, path-style, the admin key)."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    def close(self) -> None:
        self._s3.close()

    # -- reading ------------------------------------------------------------------------

    def list(self, bucket: str, prefix: str, *, limit: int = 1000, after: str = "") -> Listing:
        """Objects and folders directly under ``prefix`` (delimiter "/"), at most
        ``limit`` entries, starting after ``after``."""
        options: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        options["MaxKeys"] = limit
        if after:
            options["StartAfter"] = after
        try:
            with _storage("list objects"):
                page = self._s3.list_objects_v2(**options)
        except _Missing:
            return Listing([], [])
        objects = [_listed(item) for item in page.get("Contents", [])]
        prefixes = [str(p["Prefix"]) for p in page.get("CommonPrefixes", [])]
        last = max([o.key for o in objects] + prefixes, default=None)
        return Listing(objects, prefixes, last if page.get("IsTruncated") else None)

    def walk(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every current object under ``prefix``, at any depth."""
        try:
            with _storage("list objects"):
                paginator = self._s3.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                    yield from (_listed(item) for item in page.get("Contents", []))
        except _Missing:
            return

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        options = {"VersionId": version_id} if version_id else {}
        try:
            with _storage("read an object"):
                return _info(key, self._s3.head_object(Bucket=bucket, Key=key, **options))
        except _Missing:
            return None

    def open(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        byte_range: tuple[int, int] | None = None,
    ) -> tuple[ObjectInfo, Iterator[bytes]] | None:
        """The object's description and its body as chunks (``byte_range``: first and
        last byte, inclusive), or None when there is no such object (or version)."""
        options: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        whole = byte_range is None
        first, last = byte_range if byte_range is not None else (0, DOWNLOAD_PART - 1)
        options["Range"] = f"bytes={first}-{last}"
        try:
            with _storage("read an object"):
                answer = self._s3.get_object(Bucket=bucket, Key=key, **options)
        except _Missing:
            return None
        except ProviderError as exc:  # an empty object has no byte 0
            if not (whole and exc.details.get("code") == "InvalidRange"):
                raise
            options.pop("Range")
            with _storage("read an object"):
                answer = self._s3.get_object(Bucket=bucket, Key=key, **options)
        info = _info(key, answer)
        total = _total_size(answer.get("ContentRange"))
        if not whole or total is None or total <= DOWNLOAD_PART:
            if whole and total is not None:
                info = dataclasses.replace(info, size=total)
            return info, _chunks(answer["Body"])
        # The rest in parts fetched side by side, of the same version (or content).
        pinned = {"VersionId": info.version_id} if info.version_id else {}
        if not pinned and answer.get("ETag"):
            pinned = {"IfMatch": answer["ETag"]}
        rest = _parts_side_by_side(self._s3, bucket, key, pinned, total)
        body = itertools.chain(_chunks(answer["Body"]), rest)
        return dataclasses.replace(info, size=total), body

    def versions(self, bucket: str, key: str) -> builtins.list[dict[str, Any]]:
        """Every version and delete marker of exactly ``key``, newest first: dicts with
        VersionId, LastModified, Size (0 for markers), IsLatest and deleted."""
        found: builtins.list[dict[str, Any]] = []
        try:
            with _storage("list versions"):
                paginator = self._s3.get_paginator("list_object_versions")
                pages = list(paginator.paginate(Bucket=bucket, Prefix=key))
        except _Missing:
            return []
        for page in pages:
            for item in page.get("Versions", []):
                if item["Key"] == key:
                    found.append({**item, "deleted": False})
            for item in page.get("DeleteMarkers", []):
                if item["Key"] == key:
                    found.append({**item, "Size": 0, "deleted": True})
        # Current first, then newest first; times tie within a second, and then the
        # server's own order (newest first) stands: the sort is stable.
        return sorted(found, key=lambda v: (not v.get("IsLatest"), -v["LastModified"].timestamp()))

    # -- writing ------------------------------------------------------------------------

    def upload(
        self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> Upload:
        """A streaming upload of ``key``: :meth:`Upload.add` its chunks, then
        :meth:`Upload.finish` (or :meth:`Upload.abort`)."""
        return Upload(self._s3, bucket, key, content_type, metadata)

    # -- resumable uploads: the parts live on the server until completed or aborted --

    def begin_parts(
        self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        """Start a multipart upload of ``key``; its upload id."""
        with _storage("start an upload"):
            answer = self._s3.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
        return str(answer["UploadId"])

    def put_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> str:
        """Store part ``number``; its ETag (name it to :meth:`complete_parts`: a part
        sent twice may be kept twice). ProviderError with code ``NoSuchUpload`` when
        the upload is gone."""
        with backend("write a part"):
            answer = self._s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        return str(answer["ETag"])

    def complete_parts(
        self, bucket: str, key: str, upload_id: str, parts: builtins.list[Part]
    ) -> Completed:
        """Make the object of ``parts`` (in order) visible; its version id and ETag.
        ProviderError with code ``NoSuchUpload`` when the upload is gone. (An upload
        someone else completed already is answered with the object *they* made: compare
        the ETag with :func:`multipart_etag`.)"""
        with backend("complete an upload"):
            answer = self._s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                },
            )
        version = answer.get("VersionId")
        return Completed(
            version=None if version in (None, "null") else str(version),
            etag=str(answer.get("ETag", "")).strip('"'),
        )

    def uploads_in_progress(self, bucket: str, key: str) -> builtins.list[tuple[str, datetime]]:
        """The multipart uploads of exactly ``key`` not yet completed or aborted: their
        ids and when each began."""
        try:
            with _storage("list uploads"):
                answer = self._s3.list_multipart_uploads(Bucket=bucket, Prefix=key)
        except _Missing:
            return []
        return [
            (str(u["UploadId"]), u["Initiated"])
            for u in answer.get("Uploads", [])
            if u.get("Key") == key
        ]

    def all_uploads(self, bucket: str) -> Iterator[tuple[str, str, datetime]]:
        """Every multipart upload in ``bucket`` not yet completed or aborted: key, upload
        id, when it began."""
        try:
            with _storage("list uploads"):
                pages = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
                for page in pages:
                    for u in page.get("Uploads", []):
                        yield str(u["Key"]), str(u["UploadId"]), u["Initiated"]
        except _Missing:
            return

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts (one that is gone already is fine)."""
        try:
            with _storage("abort an upload"):
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except _Missing:
            return

    def put(
        self, bucket: str, key: str, data: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> str | None:
        """Write a small object in one request; its version id."""
        with _storage("write an object"):
            answer = self._s3.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata
            )
        version = answer.get("VersionId")
        return None if version in (None, "null") else str(version)

    def delete(self, bucket: str, key: str) -> None:
        """A delete marker over ``key`` (its versions are kept: recoverable)."""
        with _storage("delete an object"):
            self._s3.delete_object(Bucket=bucket, Key=key)

    def copy(
        self,
        bucket: str,
        key: str,
        source_key: str,
        source_version: str | None,
        metadata: dict[str, str],
        size: int | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """A new current version of ``key``: the content of ``source_key`` (at
        ``source_version``), with ``metadata``."""
        source: dict[str, str] = {"Bucket": bucket, "Key": source_key}
        if source_version:
            source["VersionId"] = source_version
        options = {"Metadata": metadata, "MetadataDirective": "REPLACE"}
        if content_type:  # REPLACE drops the source's own
            options["ContentType"] = content_type
        with _storage("copy an object"):
            if size is not None and size > MAX_SINGLE_COPY:
                # S3 copies at most 5 GB in one request: boto3's multipart copy.
                config = TransferConfig(multipart_threshold=MAX_SINGLE_COPY)
                self._s3.copy(source, bucket, key, ExtraArgs=options, Config=config)
                version = None
            else:
                answer = self._s3.copy_object(Bucket=bucket, Key=key, CopySource=source, **options)
                version = answer.get("VersionId")
        info = self.head(bucket, key, version)
        if info is None:
            raise ProviderError("Object storage lost a copied object.")
        return info


#: A whole download is fetched in ranges of this size, :data:`DOWNLOAD_WORKERS` at once.
DOWNLOAD_PART = 4 * 1024 * 1024
DOWNLOAD_WORKERS = 4


def _total_size(content_range: str | None) -> int | None:
    """The object's size from a ``Content-Range: bytes a-b/size`` answer."""
    if not content_range or "/" not in content_range:
        return None
    size = content_range.rsplit("/", 1)[1]
    return int(size) if size.isdigit() else None


def _parts_side_by_side(
    client: Any, bucket: str, key: str, pinned: dict[str, str], total: int
) -> Iterator[bytes]:
    """Bytes from :data:`DOWNLOAD_PART` to ``total`` in parts, up to
    :data:`DOWNLOAD_WORKERS` fetched at once, yielded in order (memory: that many
    parts). A consumer that stops early cancels what has not started."""

    def fetch(start: int) -> bytes:
        end = min(total, start + DOWNLOAD_PART) - 1
        with _storage("read an object"):
            answer = client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", **pinned
            )
            data: bytes = answer["Body"].read()
        if len(data) != end - start + 1:
            raise ProviderError("Object storage answered a part of the wrong size.")
        return data

    starts = iter(range(DOWNLOAD_PART, total, DOWNLOAD_PART))
    pool = ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS, thread_name_prefix="balsam-get")
    try:
        pending = [pool.submit(fetch, s) for s in itertools.islice(starts, DOWNLOAD_WORKERS)]
        while pending:
            data = pending.pop(0).result()
            following = next(starts, None)
            if following is not None:
                pending.append(pool.submit(fetch, following))
            yield data
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _chunks(body: Any) -> Iterator[bytes]:
    """A response body in chunks of 1 MiB, closed when done (or given up)."""
    try:
        yield from body.iter_chunks(chunk_size=1024 * 1024)
    except ProviderError:
        raise
    except Exception as exc:
        raise ProviderError(f"Object storage failed to read an object: {exc}") from exc
    finally:
        body.close()


class Upload:
    """One object being written: parts of :data:`PART_SIZE` as the body arrives. An
    object smaller than one part is sent in one request at :meth:`finish`."""

    def __init__(
        self, client: Any, bucket: str, key: str, content_type: str, metadata: dict[str, str]
    ) -> None:
        self._s3 = client
        self.bucket, self.key = bucket, key
        self._options = {"ContentType": content_type, "Metadata": metadata}
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._taken = 0
        self._lock = threading.Lock()  # parts may be sent side by side
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def upload_id(self) -> str | None:
        """The multipart upload on the server, once the first part has gone."""
        return self._upload_id

    def add(self, chunk: bytes) -> bool:
        """Take ``chunk``; True when a part is ready for :meth:`flush` (no I/O here)."""
        self._buffer += chunk
        self.size += len(chunk)
        self._hash.update(chunk)
        return len(self._buffer) >= PART_SIZE

    def flush(self) -> None:
        """Send the whole parts held (blocking I/O)."""
        while len(self._buffer) >= PART_SIZE:
            self.send(*self.take())

    def take(self) -> tuple[int, bytearray]:
        """The next whole part and its number, out of the buffer (no I/O): :meth:`send`
        it while more of the body arrives; parts may be sent side by side."""
        # The buffer itself becomes the part (no copy of 8 MiB); what arrived past
        # the part's end (less than a chunk) starts the next buffer.
        part, self._buffer = self._buffer, bytearray(self._buffer[PART_SIZE:])
        del part[PART_SIZE:]
        self._taken += 1
        return self._taken, part

    def _started(self) -> str:
        with self._lock:
            if self._upload_id is None:
                created = self._s3.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, **self._options
                )
                self._upload_id = str(created["UploadId"])
            return self._upload_id

    def send(self, number: int, part: bytes | bytearray) -> None:
        """Upload ``part`` as part ``number`` (blocking I/O)."""
        try:
            sent = self._s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._started(),
                PartNumber=number,
                Body=part,
            )
        except Exception as exc:
            self.abort()
            raise ProviderError(f"Object storage failed to write an object: {exc}") from exc
        with self._lock:
            self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def finish(self) -> str | None:
        """Complete the object; its version id (None where the bucket keeps none)."""
        try:
            if self._upload_id is None and not self._taken:
                answer = self._s3.put_object(
                    Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), **self._options
                )
            else:
                if self._buffer:
                    self._taken += 1
                    self.send(self._taken, bytes(self._buffer))
                    self._buffer.clear()
                parts = sorted(self._parts, key=lambda p: int(p["PartNumber"]))
                if len(parts) != self._taken:
                    raise ProviderError("Storage lost a part of an object being written.")
                answer = self._s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._started(),
                    MultipartUpload={"Parts": parts},
                )
        except ProviderError:
            raise
        except Exception as exc:
            self.abort()
            raise ProviderError(f"Object storage failed to write an object: {exc}") from exc
        version = answer.get("VersionId")
        return None if version in (None, "null") else str(version)

    def abort(self) -> None:
        """Drop what was sent (idempotent; never raises)."""
        self._buffer.clear()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            # Failing too: the server expires abandoned uploads.
            with contextlib.suppress(Exception):
                self._s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                )
