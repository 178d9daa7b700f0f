"""The embedded SeaweedFS is closed to every local process but Balsam.

One hardened server (weed under a uid of its own) for the module, a victim
bucket with an object and a victim IAM user with a key; every attack runs as
another uid, the way code in a workspace would. Each test fails if its route
opens again; the last ones check that S3 itself still works and that nothing
of the victim's changed.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from botocore.exceptions import ClientError

from balsam.embedded import SeaweedServer, client_tls, filer_jwt_key
from tests.embedded.weed_attack import (
    ADMIN_KEY,
    IAM_SERVICE,
    S3_IAM_CACHE_SERVICE,
    Attacker,
    filer_admin_jwt,
    hardened_server,
    raw_call,
    readable_by,
    unused_uid,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (weed under its own uid)")

VICTIM_BUCKET = "victim-bucket"
VICTIM_OBJECT = b"the victim's precious bytes"


@dataclass(frozen=True)
class Scene:
    server: SeaweedServer
    attacker: Attacker
    victim_key: tuple[str, str]


def client(server: SeaweedServer, service: str, key: tuple[str, str] = ADMIN_KEY) -> Any:
    return boto3.client(service, endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1])  # fmt: skip


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    server = hardened_server(tmp_path_factory.mktemp("weed") / "s", uid=unused_uid(190_000))
    server.start()
    try:
        client(server, "s3").create_bucket(Bucket=VICTIM_BUCKET)
        client(server, "s3").put_object(Bucket=VICTIM_BUCKET, Key="k", Body=VICTIM_OBJECT)
        iam = client(server, "iam")
        iam.create_user(UserName="victim")
        key = iam.create_access_key(UserName="victim")["AccessKey"]
        victim_key = (key["AccessKeyId"], key["SecretAccessKey"])
        yield Scene(server, Attacker(unused_uid(195_000)), victim_key)
    finally:
        server.stop()


def assert_victim_intact(scene: Scene) -> None:
    body = client(scene.server, "s3").get_object(Bucket=VICTIM_BUCKET, Key="k")["Body"].read()
    assert body == VICTIM_OBJECT


# -- weed shell (the filer's and master's gRPC ports) ------------------------------------


def test_weed_shell_cannot_list_identities(scene: Scene) -> None:
    output = scene.attacker.weed_shell(scene.server, "fs.ls /etc/iam/identities")
    assert "victim" not in output
    assert scene.victim_key[0] not in output


def test_weed_shell_cannot_print_a_secret_key(scene: Scene) -> None:
    output = scene.attacker.weed_shell(scene.server, "fs.cat /etc/iam/identities/victim.json")
    assert scene.victim_key[1] not in output
    assert scene.victim_key[0] not in output


def test_weed_shell_cannot_list_buckets(scene: Scene) -> None:
    output = scene.attacker.weed_shell(scene.server, "fs.ls /buckets/")
    assert VICTIM_BUCKET not in output


def test_weed_shell_cannot_configure_identities(scene: Scene) -> None:
    scene.attacker.weed_shell(
        scene.server,
        "s3.configure -user=intruder -access_key=INTRUDERKEY -secret_key=intruder-secret "
        "-actions=Admin -apply",
    )
    with pytest.raises(ClientError):
        client(scene.server, "s3", ("INTRUDERKEY", "intruder-secret")).list_buckets()


def test_weed_shell_cannot_delete_a_collection(scene: Scene) -> None:
    commands = f"lock\ncollection.delete -collection={VICTIM_BUCKET} -apply\nunlock"
    scene.attacker.weed_shell(scene.server, commands)
    assert_victim_intact(scene)


# -- HTTP on the master, volume and filer ports -------------------------------------------


@pytest.mark.parametrize("path", [f"/col/delete?collection={VICTIM_BUCKET}", "/dir/assign"])
def test_master_http_api_is_refused(scene: Scene, path: str) -> None:
    answer = scene.attacker.http(f"http://127.0.0.1:{scene.server.ports.master}{path}")
    assert answer.split()[0] in ("404", "error"), answer
    assert_victim_intact(scene)


@pytest.mark.parametrize(
    ("service", "path"),
    [("filer", "/buckets/"), ("filer", "/etc/iam/identities/"),
     ("filer", f"/buckets/{VICTIM_BUCKET}/k"), ("volume", "/1,0123456789")],
)  # fmt: skip
def test_volume_and_filer_http_are_refused(scene: Scene, service: str, path: str) -> None:
    port = scene.server.ports.as_dict()[service]
    answer = scene.attacker.http(f"http://127.0.0.1:{port}{path}")
    assert answer.split()[0] in ("401", "404", "error"), answer
    assert "victim" not in answer.replace(VICTIM_BUCKET, "")


# -- gRPC without Balsam's certificate, or without the filer admin token -------------------


def test_s3_grpc_put_identity_fails_the_handshake(scene: Scene) -> None:
    address = f"127.0.0.1:{scene.server.ports.s3_grpc}"
    put_identity = f"{S3_IAM_CACHE_SERVICE}/PutIdentity"
    with grpc.insecure_channel(address) as channel:
        assert raw_call(channel, put_identity) == grpc.StatusCode.UNAVAILABLE
    tls = client_tls(scene.server.conf_dir)
    no_client_cert = grpc.ssl_channel_credentials(root_certificates=tls.ca_pem)
    with grpc.secure_channel(address, no_client_cert) as channel:
        assert raw_call(channel, put_identity) == grpc.StatusCode.UNAVAILABLE


def test_iam_grpc_needs_the_filer_admin_token(scene: Scene) -> None:
    tls = client_tls(scene.server.conf_dir)
    credentials = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
    list_users = f"{IAM_SERVICE}/ListUsers"
    with grpc.secure_channel(scene.server.filer_grpc_address, credentials) as channel:
        assert raw_call(channel, list_users) == grpc.StatusCode.UNAUTHENTICATED
        forged = filer_admin_jwt("not-the-key" * 4)
        assert raw_call(channel, list_users, token=forged) == grpc.StatusCode.UNAUTHENTICATED
        token = filer_admin_jwt(filer_jwt_key(scene.server.conf_dir))
        assert raw_call(channel, list_users, token=token) == grpc.StatusCode.OK


def test_filer_grpc_refuses_a_client_without_balsams_certificate(scene: Scene) -> None:
    with grpc.insecure_channel(scene.server.filer_grpc_address) as channel:
        assert raw_call(channel, f"{IAM_SERVICE}/ListUsers") == grpc.StatusCode.UNAVAILABLE


# -- files and unix sockets ------------------------------------------------------------------


def test_data_dir_and_keys_are_closed_to_other_uids(scene: Scene) -> None:
    server, uid = scene.server, scene.attacker.uid
    for path in (server.data_dir, server.conf_dir, server.conf_dir / "security.toml",
                 server.conf_dir / "ca.key", server.conf_dir / "balsam.key",
                 server.conf_dir / "jwt.json", server.data_dir / "data"):  # fmt: skip
        assert not readable_by(uid, path), path
    assert server.data_dir.stat().st_uid == server.run_as_uid
    for path in server.conf_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_weed_runs_as_its_own_uid_with_a_private_tmp(scene: Scene) -> None:
    server = scene.server
    assert server.pid is not None
    status = Path(f"/proc/{server.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(server.run_as_uid)}
    assert os.readlink(f"/proc/{server.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    # weed's fixed-path gRPC sockets are in its own /tmp, not in the shared one.
    assert not list(Path("/tmp").glob(f"seaweedfs-*-grpc-{server.ports.filer_grpc}.sock"))


def test_unix_sockets_refuse_other_uids(scene: Scene) -> None:
    sockets = list((scene.server.data_dir / "run").glob("*.sock"))
    assert len(sockets) == 2
    probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
             "print('connected')")  # fmt: skip
    for path in sockets:
        output = scene.attacker.run(["/usr/bin/python3", "-c", probe, str(path)])
        assert "connected" not in output, path
        with socket.socket(socket.AF_UNIX) as own:  # Balsam (root) still can
            own.connect(str(path))


# -- and S3 still works ----------------------------------------------------------------------


def test_s3_still_serves_put_get_and_multipart(scene: Scene) -> None:
    s3 = client(scene.server, "s3")
    s3.create_bucket(Bucket="still-works")
    s3.put_object(Bucket="still-works", Key="small", Body=b"hello")
    assert s3.get_object(Bucket="still-works", Key="small")["Body"].read() == b"hello"
    upload = s3.create_multipart_upload(Bucket="still-works", Key="big")["UploadId"]
    parts = []
    for number, chunk in enumerate((b"a" * 5 * 1024 * 1024, b"b" * 1024), start=1):
        etag = s3.upload_part(Bucket="still-works", Key="big", UploadId=upload,
                              PartNumber=number, Body=chunk)["ETag"]  # fmt: skip
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket="still-works", Key="big", UploadId=upload,
                                 MultipartUpload={"Parts": parts})  # fmt: skip
    body = s3.get_object(Bucket="still-works", Key="big")["Body"].read()
    assert len(body) == 5 * 1024 * 1024 + 1024 and body.endswith(b"b" * 1024)


def test_victims_key_and_data_survive_the_attacks(scene: Scene) -> None:
    assert_victim_intact(scene)
    victim = client(scene.server, "s3", scene.victim_key)
    with pytest.raises(ClientError):  # a key without actions: refused, but known
        victim.get_object(Bucket=VICTIM_BUCKET, Key="k")
    identities = {u["UserName"] for u in client(scene.server, "iam").list_users()["Users"]}
    assert "victim" in identities and "intruder" not in identities
