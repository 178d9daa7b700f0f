"""Hardened SeaweedFS over time: upgrade in place from today's layout, PKI
rotation, and the S3 port's own IAM API switched off."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from balsam.embedded import SeaweedPorts, SeaweedServer, client_tls, filer_jwt_key, rotate_pki
from tests.embedded.weed_attack import (
    ADMIN_KEY,
    IAM_SERVICE,
    filer_admin_jwt,
    hardened_server,
    raw_call,
    unused_uid,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (weed under its own uid)")

BUCKET = "lifecycle-bucket"


class ReleasedSeaweedServer(SeaweedServer):
    """weed as the release before the hardening ran it: as root, HTTP APIs on,
    no TLS, fresh JWT keys in ``conf/security.toml`` at every start, the S3
    socket at ``<data_dir>/s3.sock``, IAM API on the S3 port writable."""

    def _prepare_data_dir(self) -> None:
        for name in ("", "data", "conf"):
            (self.data_dir / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing",
                    "jwt.filer_signing.read")  # fmt: skip
        text = "".join(f'[{name}]\nkey = "{os.urandom(32).hex()}"\n\n' for name in sections)
        (self.conf_dir / "security.toml").write_text(text)
        (self.conf_dir / "security.toml").chmod(0o600)
        self.private_tmp = False

    def _command(self) -> list[str]:
        command = [arg for arg in super()._command()
                   if arg != "-disableHttp" and "localSocket" not in arg]  # fmt: skip
        return [*command, f"-s3.localSocket={self.data_dir / 's3.sock'}"]


def client(server: SeaweedServer, service: str, key: tuple[str, str] = ADMIN_KEY) -> Any:
    return boto3.client(service, endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1])  # fmt: skip


@pytest.fixture
def started() -> Iterator[list[SeaweedServer]]:
    """Servers a test appends here are stopped at its end, whatever happens."""
    servers: list[SeaweedServer] = []
    yield servers
    for server in servers:
        server.stop()


def start(servers: list[SeaweedServer], server: SeaweedServer) -> SeaweedServer:
    servers.append(server)
    server.start()
    return server


def user_with_key(server: SeaweedServer, name: str) -> tuple[str, str]:
    """A user whose key may read ``BUCKET`` (and nothing else)."""
    iam = client(server, "iam")
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}  # fmt: skip
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def can_read(server: SeaweedServer, key: tuple[str, str]) -> bool:
    try:
        client(server, "s3", key).get_object(Bucket=BUCKET, Key="k")
    except ClientError:
        return False
    return True


def readable_soon(server: SeaweedServer, key: tuple[str, str], within: float = 2.0) -> bool:
    """Whether ``key`` reads ``BUCKET`` within ``within`` seconds. Right after a
    start, weed's S3 server may answer before it has loaded every identity from
    the filer (seen under load: one check of a kept key failed, the next passed)."""
    deadline = time.monotonic() + within
    while not can_read(server, key):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def iam_grpc_status(server: SeaweedServer, conf_dir: Path, *, tls_from: Path) -> grpc.StatusCode:
    """ListUsers over mTLS with the certificate from ``tls_from`` and a token
    signed with the key in ``conf_dir``."""
    tls = client_tls(tls_from)
    credentials = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
    token = filer_admin_jwt(filer_jwt_key(conf_dir))
    with grpc.secure_channel(server.filer_grpc_address, credentials) as channel:
        return raw_call(channel, f"{IAM_SERVICE}/ListUsers", token=token)


def test_a_data_dir_of_the_previous_release_upgrades_in_place(
    tmp_path: Path, started: list[SeaweedServer]
) -> None:
    data_dir = tmp_path / "storage"
    released = ReleasedSeaweedServer(
        data_dir,
        ports=SeaweedPorts.pick_free(),
        admin_access_key=ADMIN_KEY[0],
        admin_secret_key=ADMIN_KEY[1],
    )
    old = start(started, released)
    client(old, "s3").create_bucket(Bucket=BUCKET)
    client(old, "s3").put_object(Bucket=BUCKET, Key="k", Body=b"kept")
    kept = user_with_key(old, "kept")
    revoked = user_with_key(old, "revoked")
    client(old, "iam").delete_access_key(UserName="revoked", AccessKeyId=revoked[0])
    assert readable_soon(old, kept) and not can_read(old, revoked)
    assert (data_dir / "data").stat().st_uid == 0
    old.stop()

    new = start(started, hardened_server(data_dir, uid=unused_uid(190_000)))
    assert readable_soon(new, kept)
    assert not can_read(new, revoked)
    assert client(new, "s3").get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"kept"
    scaffolding = data_dir / "tmp"  # mount points of weed's private /tmp, made by root
    not_handed_over = [
        path
        for path in data_dir.rglob("*")
        if path.stat().st_uid != new.run_as_uid and not path.is_relative_to(scaffolding)
    ]
    assert not not_handed_over
    assert iam_grpc_status(new, new.conf_dir, tls_from=new.conf_dir) == grpc.StatusCode.OK


def test_rotation_replaces_ca_and_jwt_keys_and_everything_still_works(
    tmp_path: Path, started: list[SeaweedServer]
) -> None:
    server = start(started, hardened_server(tmp_path / "s", uid=unused_uid(190_000)))
    client(server, "s3").create_bucket(Bucket=BUCKET)
    client(server, "s3").put_object(Bucket=BUCKET, Key="k", Body=b"x")
    reader = user_with_key(server, "reader")
    before = tmp_path / "before"
    before.mkdir()
    for name in ("ca.crt", "balsam.crt", "balsam.key", "jwt.json"):
        (before / name).write_bytes((server.conf_dir / name).read_bytes())
    server.stop()

    rotate_pki(server.conf_dir)
    assert (server.conf_dir / "ca.crt").read_bytes() != (before / "ca.crt").read_bytes()
    assert filer_jwt_key(server.conf_dir) != filer_jwt_key(before)
    server.start()
    assert readable_soon(server, reader)
    assert iam_grpc_status(server, server.conf_dir, tls_from=server.conf_dir) == grpc.StatusCode.OK
    old_cert = iam_grpc_status(server, server.conf_dir, tls_from=before)
    assert old_cert == grpc.StatusCode.UNAVAILABLE  # the old CA's certificate fails the handshake
    old_token = iam_grpc_status(server, before, tls_from=server.conf_dir)
    assert old_token == grpc.StatusCode.UNAUTHENTICATED


def test_component_certificates_are_reissued_but_the_ca_and_keys_kept_at_restart(
    tmp_path: Path, started: list[SeaweedServer]
) -> None:
    server = start(started, hardened_server(tmp_path / "s", uid=None))
    ca, jwt_keys = (server.conf_dir / "ca.crt").read_bytes(), filer_jwt_key(server.conf_dir)
    cert = (server.conf_dir / "balsam.crt").read_bytes()
    server.stop()
    server.start()
    assert (server.conf_dir / "ca.crt").read_bytes() == ca
    assert filer_jwt_key(server.conf_dir) == jwt_keys
    assert (server.conf_dir / "balsam.crt").read_bytes() != cert
    assert iam_grpc_status(server, server.conf_dir, tls_from=server.conf_dir) == grpc.StatusCode.OK


def test_the_s3_ports_iam_api_can_be_switched_off(
    tmp_path: Path, started: list[SeaweedServer]
) -> None:
    data_dir = tmp_path / "s"
    server = start(started, hardened_server(data_dir, uid=None))  # today's default: on
    client(server, "s3").create_bucket(Bucket=BUCKET)
    client(server, "s3").put_object(Bucket=BUCKET, Key="k", Body=b"x")
    user = user_with_key(server, "someone")
    client(server, "iam", user).create_access_key(UserName="someone")  # a non-admin key may
    server.stop()

    off = start(started, hardened_server(data_dir, uid=None, s3_iam_api=False))
    assert readable_soon(off, user)  # identities still authenticate S3 requests
    with pytest.raises((ClientError, ResponseParserError)):  # weed answers an empty 200
        client(off, "iam", user).create_access_key(UserName="someone")
    with pytest.raises((ClientError, ResponseParserError)):  # weed answers an empty 200
        client(off, "iam").create_user(UserName="not-through-the-s3-port")
    off.stop()

    on = start(started, hardened_server(data_dir, uid=None))
    keys = client(on, "iam").list_access_keys(UserName="someone")["AccessKeyMetadata"]
    assert len(keys) == 2  # the first and the one minted while the API was on; no third
    users = {u["UserName"] for u in client(on, "iam").list_users()["Users"]}
    assert "not-through-the-s3-port" not in users
