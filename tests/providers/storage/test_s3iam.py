"""S3IamStorage against a real SeaweedFS whose S3 port serves the AWS IAM API
(``seaweed_with_iam_api``; the session's ``seaweed`` has it off, as ``balsam up``)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from balsam.errors import ProviderError
from balsam.providers.storage.base import ScopedKey
from balsam.providers.storage.objects import Part, multipart_etag
from balsam.providers.storage.s3iam import (
    POLICY_NAME,
    S3IamStorage,
    bucket_policy,
    policy_buckets,
    user_name_for,
)
from tests.fixtures.seaweed import SeaweedEndpoint, unique_bucket

DENIED = {"AccessDenied", "403", "InvalidAccessKeyId"}


def client_for(
    seaweed: SeaweedEndpoint, access_key: str, secret_key: str, service: str = "s3"
) -> Any:
    config = Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        connect_timeout=2,
        read_timeout=20,
    )
    return boto3.session.Session().client(
        service,
        endpoint_url=seaweed.endpoint_url,
        region_name=seaweed.region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def scoped_client(seaweed: SeaweedEndpoint, key: ScopedKey) -> Any:
    return client_for(seaweed, key.access_key, key.secret_key)


def admin_client(seaweed: SeaweedEndpoint) -> Any:
    return client_for(seaweed, seaweed.admin_access_key, seaweed.admin_secret_key)


def assert_denied(call: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    assert caught.value.response["Error"]["Code"] in DENIED


@pytest.fixture
def seaweed(seaweed_with_iam_api: SeaweedEndpoint) -> SeaweedEndpoint:
    """This module's server: the one with the IAM API on its S3 port."""
    return seaweed_with_iam_api


@pytest.fixture
def storage(seaweed: SeaweedEndpoint) -> Iterator[S3IamStorage]:
    provider = S3IamStorage(
        seaweed.endpoint_url, seaweed.region, seaweed.admin_access_key, seaweed.admin_secret_key
    )
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture
def bucket(storage: S3IamStorage) -> Iterator[str]:
    name = unique_bucket()
    storage.create_bucket(name)
    yield name
    storage.revoke_bucket_keys(name)
    storage.delete_bucket(name)


@pytest.fixture
def other_bucket(storage: S3IamStorage, bucket: str) -> Iterator[str]:
    """A bucket whose name extends ``bucket``'s: a prefix match must not grant it."""
    name = f"{bucket}x"
    storage.create_bucket(name)
    storage.put_object(name, "secret.txt", b"not yours")
    yield name
    storage.revoke_bucket_keys(name)
    storage.delete_bucket(name)


# -- buckets and objects ---------------------------------------------------------


def test_bucket_lifecycle_with_objects_inside(storage: S3IamStorage) -> None:
    name = unique_bucket()
    assert not storage.bucket_exists(name)
    storage.create_bucket(name)
    assert storage.bucket_exists(name)
    storage.put_object(name, "a.txt", b"a")
    storage.put_object(name, "dir/b.txt", b"b")

    storage.delete_bucket(name)
    assert not storage.bucket_exists(name)
    storage.delete_bucket(name)  # idempotent


def test_delete_bucket_aborts_unfinished_multipart_uploads(
    storage: S3IamStorage, seaweed: SeaweedEndpoint
) -> None:
    name = unique_bucket()
    storage.create_bucket(name)
    admin_client(seaweed).create_multipart_upload(Bucket=name, Key="half")
    storage.delete_bucket(name)
    assert not storage.bucket_exists(name)


def test_create_existing_bucket_is_a_provider_error(storage: S3IamStorage, bucket: str) -> None:
    with pytest.raises(ProviderError):
        storage.create_bucket(bucket)


def test_put_list_and_delete_prefix(storage: S3IamStorage, bucket: str) -> None:
    for key in ("a/1", "a/2", "ab", "b/1"):
        storage.put_object(bucket, key, b"x")
    assert storage.list_keys(bucket, "a/") == ["a/1", "a/2"]
    assert storage.list_keys(bucket) == ["a/1", "a/2", "ab", "b/1"]

    storage.delete_prefix(bucket, "a/")
    assert storage.list_keys(bucket) == ["ab", "b/1"]
    storage.delete_prefix(bucket, "a/")  # idempotent
    storage.delete_prefix(unique_bucket(), "a/")  # missing bucket: nothing to do


def test_listing_and_deleting_span_pages(storage: S3IamStorage, bucket: str) -> None:
    keys = [f"many/{i:05d}" for i in range(1005)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: storage.put_object(bucket, key, b""), keys))
    assert storage.list_keys(bucket, "many/") == keys
    storage.delete_prefix(bucket, "many/")
    assert storage.list_keys(bucket) == []


# -- scoped keys -----------------------------------------------------------------


def test_scoped_key_lists_reads_writes_and_tags_its_bucket(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="alice@project")
    s3 = scoped_client(seaweed, key)

    s3.head_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="data/x.csv", Body=b"1,2", Metadata={"origin": "test"})
    got = s3.get_object(Bucket=bucket, Key="data/x.csv")
    assert got["Body"].read() == b"1,2"
    assert got["Metadata"] == {"origin": "test"}
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]
    assert [o["Key"] for o in listed] == ["data/x.csv"]

    tags = {"TagSet": [{"Key": "stage", "Value": "raw"}]}
    s3.put_object_tagging(Bucket=bucket, Key="data/x.csv", Tagging=tags)
    assert s3.get_object_tagging(Bucket=bucket, Key="data/x.csv")["TagSet"] == tags["TagSet"]
    s3.delete_object_tagging(Bucket=bucket, Key="data/x.csv")

    s3.delete_object(Bucket=bucket, Key="data/x.csv")
    assert storage.list_keys(bucket) == []


def test_scoped_key_can_upload_in_parts(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="bob")
    s3 = scoped_client(seaweed, key)
    body = b"z" * (6 * 1024 * 1024)
    parts = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(body), bucket, "big.bin", Config=parts)
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(body)


def test_scoped_key_is_denied_on_other_buckets(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str, other_bucket: str
) -> None:
    s3 = scoped_client(seaweed, storage.create_key(bucket, label="carol"))

    assert_denied(s3.list_objects_v2, Bucket=other_bucket)
    assert_denied(s3.get_object, Bucket=other_bucket, Key="secret.txt")
    assert_denied(s3.put_object, Bucket=other_bucket, Key="planted.txt", Body=b"x")
    assert_denied(s3.delete_object, Bucket=other_bucket, Key="secret.txt")
    assert_denied(s3.get_object_tagging, Bucket=other_bucket, Key="secret.txt")
    assert_denied(s3.create_bucket, Bucket=unique_bucket())
    assert_denied(s3.delete_bucket, Bucket=bucket)
    assert storage.list_keys(other_bucket) == ["secret.txt"]


def test_anonymous_requests_are_denied(seaweed: SeaweedEndpoint, bucket: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{seaweed.endpoint_url}/{bucket}", timeout=5)  # noqa: S310
    assert caught.value.code == 403


def test_revoked_key_is_denied_at_once(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="dave")
    s3 = scoped_client(seaweed, key)
    s3.list_objects_v2(Bucket=bucket)
    assert storage.key_exists(key.access_key)

    storage.revoke_key(key.access_key)

    assert not storage.key_exists(key.access_key)
    assert_denied(s3.list_objects_v2, Bucket=bucket)
    assert_denied(s3.put_object, Bucket=bucket, Key="late.txt", Body=b"x")
    storage.revoke_key(key.access_key)  # idempotent
    assert storage.bucket_exists(bucket)  # the admin key is unaffected


def test_revoke_also_kills_keys_the_holder_minted_for_itself(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="eve")
    iam = client_for(seaweed, key.access_key, key.secret_key, service="iam")
    try:
        minted = iam.create_access_key()["AccessKey"]
    except ClientError:
        pytest.skip("this server does not let users mint their own keys")
    copy = client_for(seaweed, minted["AccessKeyId"], minted["SecretAccessKey"])

    storage.revoke_key(key.access_key)

    assert_denied(copy.list_objects_v2, Bucket=bucket)
    assert not storage.key_exists(minted["AccessKeyId"])


def test_revoking_one_key_leaves_the_others(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    first = storage.create_key(bucket, label="frank@p")
    second = storage.create_key(bucket, label="frank@p")
    assert first.access_key != second.access_key

    storage.revoke_key(first.access_key)

    scoped_client(seaweed, second).list_objects_v2(Bucket=bucket)
    storage.revoke_key(second.access_key)


def test_revoke_bucket_keys_revokes_exactly_that_buckets_keys(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str, other_bucket: str
) -> None:
    mine = [storage.create_key(bucket, label=f"member{i}") for i in range(2)]
    theirs = storage.create_key(other_bucket, label="member0")
    orphan = orphan_key(seaweed, bucket)  # made by a create whose reply was lost

    assert storage.revoke_bucket_keys(bucket) == 3

    for key in [*mine, orphan]:
        assert not storage.key_exists(key.access_key)
        assert_denied(scoped_client(seaweed, key).list_objects_v2, Bucket=bucket)
    scoped_client(seaweed, theirs).list_objects_v2(Bucket=other_bucket)
    assert storage.revoke_bucket_keys(bucket) == 0  # idempotent
    assert storage.bucket_exists(bucket)  # the admin key is unaffected
    storage.revoke_key(theirs.access_key)


def test_another_process_revokes_and_the_first_one_notices(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    # Each provider remembers the owners of the keys it minted; another
    # process (another replica, or Balsam after a restart) does not.
    other = S3IamStorage(
        seaweed.endpoint_url, seaweed.region, seaweed.admin_access_key, seaweed.admin_secret_key
    )
    try:
        first, second = (storage.create_key(bucket, label="gina") for _ in range(2))
        other.revoke_key(first.access_key)
        assert_denied(scoped_client(seaweed, first).list_objects_v2, Bucket=bucket)
        assert not storage.key_exists(first.access_key)
        storage.revoke_key(first.access_key)  # already gone: nothing to do

        third = other.create_key(bucket, label="gina")
        assert other.revoke_bucket_keys(bucket) == 2
        for key in (second, third):
            assert not storage.key_exists(key.access_key)
            assert_denied(scoped_client(seaweed, key).list_objects_v2, Bucket=bucket)
    finally:
        other.close()


def orphan_key(seaweed: SeaweedEndpoint, bucket: str) -> ScopedKey:
    """A key made behind the provider's back, as a half-finished create_key would."""
    iam = client_for(seaweed, seaweed.admin_access_key, seaweed.admin_secret_key, service="iam")
    user = user_name_for("orphan")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName=POLICY_NAME, PolicyDocument=bucket_policy(bucket))
    created = iam.create_access_key(UserName=user)["AccessKey"]
    return ScopedKey(created["AccessKeyId"], created["SecretAccessKey"], bucket)


def test_admin_key_cannot_be_revoked(storage: S3IamStorage, seaweed: SeaweedEndpoint) -> None:
    with pytest.raises(ProviderError):
        storage.revoke_key(seaweed.admin_access_key)
    assert storage.key_exists(seaweed.admin_access_key)


def test_key_for_a_bucket_pattern_is_refused(storage: S3IamStorage) -> None:
    with pytest.raises(ProviderError):
        storage.create_key("*", label="mallory")
    with pytest.raises(ProviderError):
        storage.create_key("a-bucket/*", label="mallory")


def test_policy_grants_one_bucket_only() -> None:
    policy = json.loads(bucket_policy("proj-data"))
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::proj-data", "arn:aws:s3:::proj-data/*"}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert {"s3:PutObjectTagging", "s3:GetObjectTagging", "s3:DeleteObjectTagging"} <= actions
    assert not any("*" in action for action in actions)


def test_policy_buckets_reads_aws_and_seaweedfs_shapes() -> None:
    assert policy_buckets(bucket_policy("b-1")) == {"b-1"}
    encoded = (
        "%7B%22Statement%22%3A%7B%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab-2%2F%2A%22%7D%7D"
    )
    assert policy_buckets(encoded) == {"b-2"}
    assert policy_buckets({"Statement": [{"Resource": "*"}]}) == set()


@pytest.mark.parametrize("label", ["alice@project", "ü ber/../x", "", "x" * 200])
def test_user_names_are_valid_and_fresh(label: str) -> None:
    names = {user_name_for(label) for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert 1 <= len(name) <= 64
        assert all(c.isascii() and (c.isalnum() or c in "_+=,.@-") for c in name)


# -- failures and secrets --------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_raises_provider_error_quickly() -> None:
    storage = S3IamStorage(f"http://127.0.0.1:{closed_port()}", "us-east-1", "AK", "SK")
    calls = [
        lambda: storage.create_bucket("some-bucket"),
        lambda: storage.delete_bucket("some-bucket"),
        lambda: storage.bucket_exists("some-bucket"),
        lambda: storage.put_object("some-bucket", "k", b""),
        lambda: storage.delete_prefix("some-bucket", ""),
        lambda: storage.list_keys("some-bucket"),
        lambda: storage.create_key("some-bucket", label="x"),
        lambda: storage.revoke_key("AKIAEXAMPLE0000000000"),
        lambda: storage.revoke_bucket_keys("some-bucket"),
        lambda: storage.key_exists("AKIAEXAMPLE0000000000"),
    ]
    started = time.monotonic()
    for call in calls:
        with pytest.raises(ProviderError) as caught:
            call()
        assert caught.value.status == 502
    assert time.monotonic() - started < 10
    storage.close()


def test_wrong_admin_secret_is_a_provider_error(seaweed: SeaweedEndpoint) -> None:
    storage = S3IamStorage(seaweed.endpoint_url, seaweed.region, seaweed.admin_access_key, "nope")
    with pytest.raises(ProviderError):
        storage.bucket_exists("any-bucket")
    with pytest.raises(ProviderError):
        storage.create_key("any-bucket", label="x")


def test_secrets_never_in_repr(
    storage: S3IamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="grace")
    assert key.secret_key not in repr(key)
    assert seaweed.admin_secret_key not in repr(storage)
    assert seaweed.admin_secret_key not in repr(seaweed)
    assert seaweed.admin_secret_key not in repr(seaweed.server)


@pytest.mark.parametrize(
    ("endpoint", "signed"),
    [
        ("http://127.0.0.1:8333", False),  # the embedded server: loopback
        ("http://[::1]:8333", False),
        ("http://localhost:9000", False),
        ("https://s3.example.org", False),  # TLS keeps the body as sent
        ("http://s3.internal.example:9000", True),  # anyone on the way could change it
        ("http://10.0.0.5:9000", True),
    ],
)
def test_bodies_are_signed_unless_the_channel_keeps_them(endpoint: str, signed: bool) -> None:
    storage = S3IamStorage(endpoint, "us-east-1", "AKEXAMPLE", "not-a-secret")
    try:
        config = storage.objects._s3.meta.config
        assert config.s3["payload_signing_enabled"] is signed
        assert config.s3["addressing_style"] == "path"
    finally:
        storage.close()


def test_a_multipart_objects_etag_is_foretold_from_md5_parts_only() -> None:
    def md5(data: bytes) -> Any:
        return hashlib.md5(data, usedforsecurity=False)  # S3's ETags, not a protection

    parts = [Part(1, 5, f'"{md5(b"hello").hexdigest()}"'), Part(2, 5, md5(b"world").hexdigest())]
    joined = md5(md5(b"hello").digest() + md5(b"world").digest()).hexdigest()
    assert multipart_etag(parts) == f"{joined}-2"
    assert multipart_etag([Part(1, 5, "not-an-md5-but-a-kms-tag")]) is None
