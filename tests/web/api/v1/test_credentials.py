"""Project-scoped S3 keys, used with boto3 against the real SeaweedFS."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Credential
from tests.fixtures.app import TestUser


def s3(key: dict[str, Any]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=key["endpoint"],
        region_name=key["region"],
        aws_access_key_id=key["accessKey"],
        aws_secret_access_key=key["secretKey"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def denied(call: Any) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in {
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "403",
        }
    return False


def test_mint_use_list_revoke(alice: TestUser, ctx: AppContext, project: dict[str, Any]) -> None:
    pid = project["id"]
    r = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "laptop"})
    assert r.status_code == 201, r.text
    key = r.json()
    assert key["bucket"] == pid and key["owner"] == alice.username and key["secretKey"]
    client = s3(key)
    client.put_object(
        Bucket=pid,
        Key="main/data/x.csv",
        Body=b"a,b\n",
        Metadata={"source": "test"},
        Tagging="kind=raw",
    )
    assert client.get_object(Bucket=pid, Key="main/data/x.csv")["Body"].read() == b"a,b\n"
    tags = client.get_object_tagging(Bucket=pid, Key="main/data/x.csv")["TagSet"]
    assert tags == [{"Key": "kind", "Value": "raw"}]
    listed = alice.client.get(f"/api/v1/projects/{pid}/credentials").json()["credentials"]
    assert {c["accessKey"] for c in listed} == {
        key["accessKey"],
        project["credentials"]["accessKey"],
    }
    assert all("secretKey" not in c for c in listed)
    assert (
        alice.client.delete(f"/api/v1/projects/{pid}/credentials/{key['accessKey']}").status_code
        == 204
    )
    assert denied(lambda: client.list_objects_v2(Bucket=pid))
    assert (
        alice.client.delete(f"/api/v1/projects/{pid}/credentials/{key['accessKey']}").status_code
        == 404
    )


def test_key_of_project_a_is_denied_on_project_b(
    alice: TestUser, bob: TestUser, unique: Any
) -> None:
    a = alice.client.post("/api/v1/projects", json={"name": unique("A "), "branchName": "main"})
    b = bob.client.post("/api/v1/projects", json={"name": unique("B "), "branchName": "main"})
    key_a, bucket_b = a.json()["credentials"], b.json()["bucket"]
    key_b = b.json()["credentials"]
    s3(key_b).put_object(Bucket=bucket_b, Key="main/secret.txt", Body=b"secret")
    client = s3(key_a)
    assert denied(lambda: client.list_objects_v2(Bucket=bucket_b))
    assert denied(lambda: client.get_object(Bucket=bucket_b, Key="main/secret.txt"))
    assert denied(lambda: client.put_object(Bucket=bucket_b, Key="main/x", Body=b"x"))
    assert denied(lambda: client.delete_object(Bucket=bucket_b, Key="main/secret.txt"))
    assert denied(lambda: client.create_bucket(Bucket="rogue-bucket-zz"))


def test_members_see_only_their_keys_owners_see_all(
    alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    pid = project["id"]
    alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    bobs = bob.client.post(f"/api/v1/projects/{pid}/credentials", json={}).json()
    mine = bob.client.get(f"/api/v1/projects/{pid}/credentials").json()["credentials"]
    assert [c["accessKey"] for c in mine] == [bobs["accessKey"]]
    everyone = alice.client.get(f"/api/v1/projects/{pid}/credentials").json()["credentials"]
    assert {c["owner"] for c in everyone} == {alice.username, bob.username}
    assert (
        alice.client.delete(f"/api/v1/projects/{pid}/credentials/{bobs['accessKey']}").status_code
        == 204
    )


def test_no_secret_in_database(alice: TestUser, ctx: AppContext, project: dict[str, Any]) -> None:
    secret = project["credentials"]["secretKey"]
    with ctx.sessions() as session:
        rows = session.scalars(select(Credential)).all()
    assert all(secret not in repr(vars(r)) for r in rows)
    db_file = ctx.settings.data_dir / "balsam.db"
    if db_file.exists():
        ctx.engine.dispose()
        assert secret.encode() not in db_file.read_bytes()


@pytest.mark.parametrize("body", [{"name": 5}, {"name": "x" * 101}, {"other": 1}, [1]])
def test_bad_credential_input(alice: TestUser, project: dict[str, Any], body: Any) -> None:
    r = alice.client.post(f"/api/v1/projects/{project['id']}/credentials", json=body)
    assert r.status_code == 422, r.text
