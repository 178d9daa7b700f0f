"""Buckets keep versions: retiring a prefix hides its objects but keeps their data,
purging removes chosen versions for good, deleting a bucket leaves nothing, and a
bucket made before versioning gets it. Against the session's real SeaweedFS."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from balsam.providers.storage.seaweed_iam import SeaweedIamStorage
from tests.fixtures.seaweed import SeaweedEndpoint, unique_bucket


@pytest.fixture
def s3(seaweed: SeaweedEndpoint) -> Iterator[Any]:
    """A plain boto3 client with the admin key: to look behind the provider."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=seaweed.endpoint_url,
        region_name=seaweed.region,
        aws_access_key_id=seaweed.admin_access_key,
        aws_secret_access_key=seaweed.admin_secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
    yield client
    client.close()


@pytest.fixture
def bucket(storage: SeaweedIamStorage) -> Iterator[str]:
    name = unique_bucket("v")
    storage.create_bucket(name)
    yield name
    storage.delete_bucket(name)


def versioning(s3: Any, bucket: str) -> str | None:
    status: str | None = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return status


def read(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id else {}
    body: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return body


def test_new_buckets_keep_versions(s3: Any, bucket: str) -> None:
    assert versioning(s3, bucket) == "Enabled"


def test_retiring_a_prefix_hides_its_objects_and_keeps_their_data(
    storage: SeaweedIamStorage, s3: Any, bucket: str
) -> None:
    storage.put_object(bucket, "old/1", b"first")
    storage.put_object(bucket, "old/1", b"second")
    storage.put_object(bucket, "old/2", b"two")
    storage.put_object(bucket, "kept/1", b"kept")

    assert storage.retire_prefix(bucket, "old/") == 2
    assert storage.list_keys(bucket) == ["kept/1"]
    with pytest.raises(ClientError):
        read(s3, bucket, "old/1")

    versions = storage.list_versions(bucket, "old/")
    assert [(v.key, v.is_delete_marker, v.is_latest) for v in versions] == [
        ("old/1", True, True),
        ("old/1", False, False),
        ("old/1", False, False),
        ("old/2", True, True),
        ("old/2", False, False),
    ]
    kept = [read(s3, bucket, v.key, v.version_id) for v in versions if not v.is_delete_marker]
    assert kept == [b"second", b"first", b"two"]
    assert storage.retire_prefix(bucket, "old/") == 0  # idempotent: nothing current left
    assert len(storage.list_versions(bucket, "old/")) == 5


def test_retiring_spans_pages(storage: SeaweedIamStorage, bucket: str) -> None:
    keys = [f"many/{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: storage.put_object(bucket, key, b""), keys))
    assert storage.retire_prefix(bucket, "many/") == len(keys)
    assert storage.list_keys(bucket) == []
    assert sum(not v.is_delete_marker for v in storage.list_versions(bucket)) == len(keys)


def test_retiring_in_a_missing_bucket_retires_nothing(storage: SeaweedIamStorage) -> None:
    assert storage.retire_prefix(unique_bucket("v"), "a/") == 0


def test_retiring_keeps_data_even_after_a_key_holder_suspended_versioning(
    storage: SeaweedIamStorage, s3: Any, bucket: str
) -> None:
    # Scoped keys may change a bucket's versioning on SeaweedFS: no cached state.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    storage.put_object(bucket, "a/1", b"data")
    storage.retire_prefix(bucket, "a/")
    (version,) = [v for v in storage.list_versions(bucket, "a/") if not v.is_delete_marker]
    assert read(s3, bucket, "a/1", version.version_id) == b"data"
    assert versioning(s3, bucket) == "Enabled"


def test_purging_removes_exactly_the_versions_given(
    storage: SeaweedIamStorage, s3: Any, bucket: str
) -> None:
    storage.put_object(bucket, "a/1", b"x")
    storage.put_object(bucket, "a/1", b"y")
    storage.put_object(bucket, "b/1", b"z")
    storage.retire_prefix(bucket, "a/")
    noncurrent = [v for v in storage.list_versions(bucket) if not v.is_latest]
    assert len(noncurrent) == 2

    assert storage.purge_versions(bucket, noncurrent) == 2
    assert [(v.key, v.is_delete_marker) for v in storage.list_versions(bucket)] == [
        ("a/1", True),
        ("b/1", False),
    ]
    assert storage.purge_versions(bucket, noncurrent) == 2  # idempotent
    marker = storage.list_versions(bucket, "a/")
    storage.purge_versions(bucket, marker)
    assert [v.key for v in storage.list_versions(bucket)] == ["b/1"]
    assert read(s3, bucket, "b/1") == b"z"


def test_delete_prefix_destroys_every_version_and_marker(
    storage: SeaweedIamStorage, bucket: str
) -> None:
    storage.put_object(bucket, "a/1", b"x")
    storage.put_object(bucket, "a/1", b"y")
    storage.retire_prefix(bucket, "a/")
    storage.put_object(bucket, "a/2", b"z")
    storage.put_object(bucket, "b/1", b"kept")

    storage.delete_prefix(bucket, "a/")
    assert storage.list_versions(bucket, "a/") == []
    assert storage.list_keys(bucket) == ["b/1"]


def test_deleting_a_bucket_with_versions_and_markers_leaves_nothing(
    storage: SeaweedIamStorage,
) -> None:
    name = unique_bucket("v")
    storage.create_bucket(name)
    for body in (b"1", b"2"):
        storage.put_object(name, "a/1", body)
    storage.put_object(name, "b/1", b"3")
    storage.retire_prefix(name, "a/")

    storage.delete_bucket(name)
    assert not storage.bucket_exists(name)
    storage.delete_bucket(name)  # idempotent
    storage.create_bucket(name)  # same name again: nothing of the old one shows
    try:
        assert storage.list_versions(name) == []
    finally:
        storage.delete_bucket(name)


def test_a_bucket_made_before_versioning_gets_it_and_keeps_old_objects(
    storage: SeaweedIamStorage, s3: Any
) -> None:
    name = unique_bucket("v")
    s3.create_bucket(Bucket=name)  # as an older Balsam made it
    try:
        s3.put_object(Bucket=name, Key="a/old", Body=b"from before")
        assert versioning(s3, name) is None

        assert storage.enable_versioning(name) is True
        assert storage.enable_versioning(name) is False  # idempotent
        assert versioning(s3, name) == "Enabled"
        storage.retire_prefix(name, "a/")
        assert storage.list_keys(name) == []
        (old,) = [v for v in storage.list_versions(name) if not v.is_delete_marker]
        assert read(s3, name, "a/old", old.version_id) == b"from before"
    finally:
        storage.delete_bucket(name)
