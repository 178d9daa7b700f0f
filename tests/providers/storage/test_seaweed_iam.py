"""SeaweedIamStorage against the real, hardened SeaweedFS of the session
(``seaweed``: mutual TLS on gRPC, no IAM API on the S3 port): keys through the
filer's IAM gRPC service."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from balsam.embedded import SeaweedPorts, SeaweedServer, client_tls, filer_jwt_key, rotate_pki
from balsam.errors import ProviderError
from balsam.providers.storage import seaweed_iam
from balsam.providers.storage.base import ScopedKey
from balsam.providers.storage.iam_pb import iam_pb2, iam_pb2_grpc
from balsam.providers.storage.seaweed_iam import SeaweedIamStorage, scoped_bucket
from balsam.providers.storage.seaweed_iam_client import FilerIam, filer_admin_token
from tests.fixtures.seaweed import SeaweedEndpoint, unique_bucket

DENIED = {"AccessDenied", "403", "InvalidAccessKeyId"}
# What boto3's IAM client raises where the S3 port serves no IAM API (an empty reply).
NO_IAM_API = (ClientError, BotoCoreError, ResponseParserError)


def client_for(seaweed: SeaweedEndpoint, access_key: str, secret_key: str, service: str = "s3"
               ) -> Any:  # fmt: skip
    config = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                    connect_timeout=2, read_timeout=20)  # fmt: skip
    return boto3.session.Session().client(
        service, endpoint_url=seaweed.endpoint_url, region_name=seaweed.region,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=config)  # fmt: skip


def scoped_client(seaweed: SeaweedEndpoint, key: ScopedKey) -> Any:
    return client_for(seaweed, key.access_key, key.secret_key)


def assert_denied(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    code = str(caught.value.response["Error"]["Code"])
    assert code in DENIED
    return code


@pytest.fixture
def bucket(storage: SeaweedIamStorage) -> Iterator[str]:
    name = unique_bucket()
    storage.create_bucket(name)
    yield name
    storage.revoke_bucket_keys(name)
    storage.delete_bucket(name)


@pytest.fixture
def other_bucket(storage: SeaweedIamStorage, bucket: str) -> Iterator[str]:
    """A bucket whose name extends ``bucket``'s: a prefix match must not grant it."""
    name = f"{bucket}x"
    storage.create_bucket(name)
    storage.put_object(name, "secret.txt", b"not yours")
    yield name
    storage.revoke_bucket_keys(name)
    storage.delete_bucket(name)


# -- scoped keys -----------------------------------------------------------------


def test_key_lists_reads_writes_deletes_and_tags_its_bucket_at_once(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    """What SCB's minio notebook does, right after create_key returns."""
    key = storage.create_key(bucket, label="alice@proj")
    s3 = scoped_client(seaweed, key)
    s3.head_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="data/a.csv", Body=b"1,2\n", Metadata={"origin": "scb"})
    assert s3.get_object(Bucket=bucket, Key="data/a.csv")["Body"].read() == b"1,2\n"
    assert s3.head_object(Bucket=bucket, Key="data/a.csv")["Metadata"] == {"origin": "scb"}
    tags = {"TagSet": [{"Key": "kind", "Value": "raw"}]}
    s3.put_object_tagging(Bucket=bucket, Key="data/a.csv", Tagging=tags)
    assert s3.get_object_tagging(Bucket=bucket, Key="data/a.csv")["TagSet"] == tags["TagSet"]
    s3.delete_object_tagging(Bucket=bucket, Key="data/a.csv")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]
    assert [item["Key"] for item in listed] == ["data/a.csv"]
    s3.delete_object(Bucket=bucket, Key="data/a.csv")
    assert storage.key_exists(key.access_key)


def test_key_is_denied_on_other_buckets(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str, other_bucket: str
) -> None:
    s3 = scoped_client(seaweed, storage.create_key(bucket, label="bob@proj"))
    assert_denied(s3.list_objects_v2, Bucket=other_bucket)
    assert_denied(s3.get_object, Bucket=other_bucket, Key="secret.txt")
    assert_denied(s3.put_object, Bucket=other_bucket, Key="x", Body=b"x")
    assert_denied(s3.delete_object, Bucket=other_bucket, Key="secret.txt")
    assert_denied(s3.create_bucket, Bucket=unique_bucket())
    assert storage.list_keys(other_bucket) == ["secret.txt"]


def test_revoked_key_is_refused_when_revoke_returns(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="carol@proj")
    s3 = scoped_client(seaweed, key)
    s3.list_objects_v2(Bucket=bucket)

    storage.revoke_key(key.access_key)

    assert assert_denied(s3.list_objects_v2, Bucket=bucket) == "InvalidAccessKeyId"
    assert not storage.key_exists(key.access_key)
    storage.revoke_key(key.access_key)  # idempotent
    storage.revoke_key("BKNEVERMINTED0000000")


def test_revoking_one_key_leaves_the_others(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    first, second = (storage.create_key(bucket, label="dave@proj") for _ in range(2))
    assert first.access_key != second.access_key
    storage.revoke_key(first.access_key)
    scoped_client(seaweed, second).list_objects_v2(Bucket=bucket)


def test_revoke_bucket_keys_revokes_exactly_that_buckets_keys(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str, other_bucket: str
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


def test_another_process_revokes_and_the_first_one_notices(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    """A second provider (Balsam after a restart) knows nothing the first cached."""
    other = seaweed.iam_storage()
    try:
        first, second = (storage.create_key(bucket, label="gina") for _ in range(2))
        other.revoke_key(first.access_key)
        assert not storage.key_exists(first.access_key)
        storage.revoke_key(first.access_key)
        third = other.create_key(bucket, label="gina")
        assert storage.revoke_bucket_keys(bucket) == 2
        for key in (second, third):
            assert_denied(scoped_client(seaweed, key).list_objects_v2, Bucket=bucket)
    finally:
        other.close()


def orphan_key(seaweed: SeaweedEndpoint, bucket: str) -> ScopedKey:
    """A key scoped to ``bucket`` made behind the provider's back (another process)."""
    other = seaweed.iam_storage()
    try:
        return other.create_key(bucket, label="orphan")
    finally:
        other.close()


def test_a_name_taken_fails_the_create_and_leaves_that_key_alone(
    storage: SeaweedIamStorage,
    seaweed: SeaweedEndpoint,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = storage.create_key(bucket, label="henry")
    holder = storage.iam.call(
        "look up",
        lambda s: s.GetUserByAccessKey,
        iam_pb2.GetUserByAccessKeyRequest(access_key=first.access_key),
    )
    assert holder is not None
    monkeypatch.setattr(seaweed_iam, "user_name_for", lambda label: holder.identity.name)
    with pytest.raises(ProviderError) as caught:
        storage.create_key(bucket, label="henry")
    assert caught.value.details["code"] == "ALREADY_EXISTS"
    scoped_client(seaweed, first).list_objects_v2(Bucket=bucket)


def test_a_create_that_timed_out_after_the_server_made_it_is_unsettled(
    storage: SeaweedIamStorage, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CreateUser carried out, but its reply late (deadline): the identity is deleted,
    yet weed may still carry out a queued copy, so the error is marked unsettled
    and the caller's journal sweeps the bucket later."""
    made: list[str] = []
    real_call = storage.iam.call

    def late(operation: str, method: Any, request: Any, **kwargs: Any) -> Any:
        reply = real_call(operation, method, request, **kwargs)
        if operation == "create key":
            made.append(request.identity.credentials[0].access_key)
            raise ProviderError(
                "late", details={"operation": operation, "code": "DEADLINE_EXCEEDED"}
            )
        return reply

    monkeypatch.setattr(storage.iam, "call", late)
    with pytest.raises(ProviderError) as caught:
        storage.create_key(bucket, label="late")
    assert caught.value.unsettled
    monkeypatch.undo()
    assert made and not storage.key_exists(made[0])  # deleted at once all the same


def test_a_failed_create_whose_undo_fails_is_unsettled(
    storage: SeaweedIamStorage, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = storage.iam.call

    def refusing(operation: str, method: Any, request: Any, **kwargs: Any) -> Any:
        if operation == "revoke key":
            raise ProviderError("down", details={"operation": operation, "code": "UNAVAILABLE"})
        return real_call(operation, method, request, **kwargs)

    def never_accepted(key: ScopedKey) -> None:
        raise ProviderError("not accepted", details={"code": "timeout"})

    monkeypatch.setattr(storage.iam, "call", refusing)
    monkeypatch.setattr(storage, "_wait_until_accepted", never_accepted)
    with pytest.raises(ProviderError) as caught:
        storage.create_key(bucket, label="stuck")
    assert caught.value.unsettled
    monkeypatch.undo()
    assert storage.revoke_bucket_keys(bucket) == 1  # what the repair sweep finds


def test_a_failed_create_undone_cleanly_is_settled(
    storage: SeaweedIamStorage, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_accepted(key: ScopedKey) -> None:
        raise ProviderError("not accepted", details={"code": "timeout"})

    monkeypatch.setattr(storage, "_wait_until_accepted", never_accepted)
    with pytest.raises(ProviderError) as caught:
        storage.create_key(bucket, label="clean")
    assert not caught.value.unsettled
    monkeypatch.undo()
    assert storage.revoke_bucket_keys(bucket) == 0


def test_children_forked_while_grpc_calls_run_start_cleanly(
    storage: SeaweedIamStorage, bucket: str
) -> None:
    """gRPC's fork handlers crashed about one child in a hundred forked during its
    calls (git as a workspace's user: a plain fork, not vfork): they are off."""
    key = storage.create_key(bucket, label="forks")
    stop = threading.Event()

    def calls() -> None:
        while not stop.is_set():
            storage.iam.call(
                "look up",
                lambda s: s.GetUserByAccessKey,
                iam_pb2.GetUserByAccessKeyRequest(access_key=key.access_key),
            )

    caller = threading.Thread(target=calls)
    caller.start()
    try:
        failed = []
        for _ in range(300):  # preexec_fn: a plain fork, as with user=
            done = subprocess.run(["true"], preexec_fn=lambda: None, capture_output=True,
                                  text=True, check=False)  # fmt: skip
            if done.returncode != 0:
                failed.append((done.returncode, done.stderr[-200:]))
    finally:
        stop.set()
        caller.join()
    assert failed == []


def test_concurrent_mints_all_work(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    keys: list[ScopedKey] = []
    threads = [threading.Thread(target=lambda: keys.append(storage.create_key(bucket, label="c")))
               for _ in range(10)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({key.access_key for key in keys}) == 10
    for key in keys:
        scoped_client(seaweed, key).list_objects_v2(Bucket=bucket)


def test_a_key_cannot_mint_keys_on_the_s3_port(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    """The S3 port serves no IAM API: a key cannot mint copies of itself there."""
    key = storage.create_key(bucket, label="mallory@proj")
    iam = client_for(seaweed, key.access_key, key.secret_key, service="iam")
    holder = storage.iam.call(
        "look up",
        lambda s: s.GetUserByAccessKey,
        iam_pb2.GetUserByAccessKeyRequest(access_key=key.access_key),
    )
    assert holder is not None
    for attempt in (
        lambda: iam.create_access_key(UserName=holder.identity.name),
        lambda: iam.create_access_key(),
        lambda: iam.create_user(UserName="mallory"),
    ):
        with pytest.raises(NO_IAM_API):  # no IAM API: not even an error body
            attempt()
    after = storage.iam.call(
        "look up", lambda s: s.GetUser, iam_pb2.GetUserRequest(username=holder.identity.name)
    )
    assert after is not None and len(after.identity.credentials) == 1
    assert (
        storage.iam.call("look up", lambda s: s.GetUser, iam_pb2.GetUserRequest(username="mallory"))
        is None
    )
    admin_iam = client_for(seaweed, seaweed.admin_access_key, seaweed.admin_secret_key, "iam")
    with pytest.raises(NO_IAM_API):
        admin_iam.list_users()


def test_admin_key_cannot_be_revoked(storage: SeaweedIamStorage, seaweed: SeaweedEndpoint
                                     ) -> None:  # fmt: skip
    with pytest.raises(ProviderError):
        storage.revoke_key(seaweed.admin_access_key)
    assert storage.bucket_exists(unique_bucket()) is False  # the admin key still works


@pytest.mark.parametrize("name", ["*", "a-bucket/*", "A", "x" * 70, "b:c"])
def test_key_for_an_invalid_bucket_is_refused(storage: SeaweedIamStorage, name: str) -> None:
    with pytest.raises(ProviderError):
        storage.create_key(name, label="mallory")


def test_scope_is_read_from_actions() -> None:
    actions = [f"{a}:proj-1" for a in ("Read", "Write", "List", "Tagging")]
    assert scoped_bucket(iam_pb2.Identity(name="k", actions=actions)) == "proj-1"
    assert scoped_bucket(iam_pb2.Identity(name="k", actions=[*actions, "Read:proj-2"])) is None
    assert scoped_bucket(iam_pb2.Identity(name="admin", actions=["Admin"])) is None
    assert scoped_bucket(iam_pb2.Identity(name="k", actions=["Read:proj-1/sub/*"])) == "proj-1"


# -- the service is Balsam's alone -----------------------------------------------


def iam_stub(seaweed: SeaweedEndpoint, credentials: grpc.ChannelCredentials | None) -> Any:
    address = seaweed.server.filer_grpc_address
    channel = (grpc.insecure_channel(address) if credentials is None
               else grpc.secure_channel(address, credentials))  # fmt: skip
    return iam_pb2_grpc.SeaweedIdentityAccessManagementStub(channel)  # type: ignore[no-untyped-call]


def mtls(seaweed: SeaweedEndpoint) -> grpc.ChannelCredentials:
    tls = client_tls(seaweed.server.conf_dir)
    return grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def test_the_service_answers_balsam(seaweed: SeaweedEndpoint) -> None:
    """The positive control of the refusals below."""
    token = filer_admin_token(filer_jwt_key(seaweed.server.conf_dir))
    stub = iam_stub(seaweed, mtls(seaweed))
    stub.ListUsers(iam_pb2.ListUsersRequest(), metadata=bearer(token), timeout=5)


def test_a_call_without_the_admin_jwt_is_refused(seaweed: SeaweedEndpoint) -> None:
    stub = iam_stub(seaweed, mtls(seaweed))
    for metadata in [(), bearer("not-a-jwt"), bearer(filer_admin_token("some-other-key")),
                     bearer(filer_admin_token(filer_jwt_key(seaweed.server.conf_dir),
                                              now=time.time() - 3600))]:  # fmt: skip
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListUsers(iam_pb2.ListUsersRequest(), metadata=metadata, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_call_without_the_client_certificate_is_refused(seaweed: SeaweedEndpoint) -> None:
    token = filer_admin_token(filer_jwt_key(seaweed.server.conf_dir))
    ca_only = grpc.ssl_channel_credentials(client_tls(seaweed.server.conf_dir).ca_pem)
    for credentials in (None, ca_only):
        with pytest.raises(grpc.RpcError) as caught:
            iam_stub(seaweed, credentials).ListUsers(
                iam_pb2.ListUsersRequest(), metadata=bearer(token), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


# -- failures, deadlines, rotation -----------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provider_at(seaweed: SeaweedEndpoint, address: str, conf_dir: Path, timeout: float = 5.0
                ) -> SeaweedIamStorage:  # fmt: skip
    return SeaweedIamStorage(
        seaweed.endpoint_url, seaweed.region, seaweed.admin_access_key, seaweed.admin_secret_key,
        iam=FilerIam(address, conf_dir, timeout=timeout, list_timeout=timeout))  # fmt: skip


def test_unreachable_service_is_a_provider_error_quickly(
    seaweed: SeaweedEndpoint, bucket: str
) -> None:
    storage = provider_at(seaweed, f"127.0.0.1:{closed_port()}", seaweed.server.conf_dir, 1.0)
    calls = [lambda: storage.create_key(bucket, label="x"),
             lambda: storage.revoke_key("BKEXAMPLE00000000000"),
             lambda: storage.revoke_bucket_keys(bucket),
             lambda: storage.key_exists("BKEXAMPLE00000000000")]  # fmt: skip
    started = time.monotonic()
    for call in calls:
        with pytest.raises(ProviderError) as caught:
            call()
        assert caught.value.status == 502
    assert time.monotonic() - started < 8
    storage.close()


def test_a_silent_service_hits_the_deadline(seaweed: SeaweedEndpoint, bucket: str) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        storage = provider_at(seaweed, address, seaweed.server.conf_dir, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            storage.create_key(bucket, label="x")
        assert caught.value.details["code"] == "DEADLINE_EXCEEDED"
        assert time.monotonic() - started < 3
        storage.close()


def test_missing_credentials_are_a_provider_error(
    seaweed: SeaweedEndpoint, tmp_path: Path, bucket: str
) -> None:
    storage = provider_at(seaweed, seaweed.server.filer_grpc_address, tmp_path)
    with pytest.raises(ProviderError):
        storage.create_key(bucket, label="x")
    storage.close()


def test_keys_survive_a_rotation_and_the_client_follows_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """After rotate_pki and a restart the same provider object keeps working
    (it reopens its channel with the new certificate and JWT key)."""
    server = SeaweedServer(tmp_path_factory.mktemp("rotate"), ports=SeaweedPorts.pick_free(),
                           admin_access_key="ROTATEADMIN0000", admin_secret_key="rotate-secret-0",
                           memory_limit_mib=256, stop_timeout=5.0, s3_iam_api=False)  # fmt: skip
    endpoint = SeaweedEndpoint(server.endpoint_url, "us-east-1", "ROTATEADMIN0000",
                               "rotate-secret-0", server)  # fmt: skip
    with server:
        storage = endpoint.iam_storage()
        storage.create_bucket("rot-b")
        key = storage.create_key("rot-b", label="rot")
        server.stop()
        old_token = filer_admin_token(filer_jwt_key(server.conf_dir))
        rotate_pki(server.conf_dir)
        server.start()
        scoped_client(endpoint, key).list_objects_v2(Bucket="rot-b")
        second = storage.create_key("rot-b", label="rot")
        storage.revoke_key(key.access_key)
        assert storage.key_exists(second.access_key)
        with pytest.raises(grpc.RpcError):  # tokens signed with the old key stop working
            iam_stub(endpoint, mtls(endpoint)).ListUsers(
                iam_pb2.ListUsersRequest(), metadata=bearer(old_token), timeout=5
            )
        storage.close()


def test_secrets_never_in_repr(
    storage: SeaweedIamStorage, seaweed: SeaweedEndpoint, bucket: str
) -> None:
    key = storage.create_key(bucket, label="grace")
    assert key.secret_key not in repr(key)
    assert seaweed.admin_secret_key not in repr(storage)
    assert filer_jwt_key(seaweed.server.conf_dir) not in repr(storage)
