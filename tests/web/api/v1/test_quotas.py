"""Storage quotas against the real SeaweedFS: set by admins, shown with the usage,
refused through Balsam (507) and, through the quota sweep, for direct writes with a
project key — which may write again once the project is back under its quota."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from balsam.context import AppContext
from balsam.db.models import utcnow
from balsam.domain.data.quotas import enforce_quotas
from balsam.domain.data.uploads import sweep_stale_multipart
from tests.fixtures.app import TestUser


def _quota(admin: TestUser, project: dict[str, Any], quota: int | None) -> None:
    answer = admin.client.patch(
        f"/api/v1/projects/{project['id']}", json={"storageQuotaBytes": quota}
    )
    assert answer.status_code == 200, answer.text


def _put(user: TestUser, project: dict[str, Any], path: str, body: Any) -> Any:
    return user.client.put(f"/api/v1/projects/{project['id']}/data/{path}", content=body)


def _used(user: TestUser, project: dict[str, Any]) -> dict[str, Any]:
    usage: dict[str, Any] = user.client.get(f"/api/v1/projects/{project['id']}/usage").json()
    return usage


def test_only_admins_set_a_quota_and_usage_shows_it(
    alice: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    url = f"/api/v1/projects/{project['id']}"
    refused = alice.client.patch(url, json={"storageQuotaBytes": 10})  # the owner
    assert refused.status_code == 403
    assert alice.client.patch(url, json={"storageQuotaBytes": -1}).status_code == 422
    assert alice.client.patch(url, json={}).status_code == 422
    assert _used(alice, project)["storageQuotaBytes"] is None
    _quota(admin, project, 12345)
    assert _used(alice, project)["storageQuotaBytes"] == 12345
    assert alice.client.get(url).json()["storageQuotaBytes"] == 12345
    # The owner may still change the description alone.
    assert alice.client.patch(url, json={"description": "ny"}).status_code == 200
    _quota(admin, project, None)
    assert _used(alice, project)["storageQuotaBytes"] is None


def test_writes_through_balsam_past_the_quota_are_refused(
    alice: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    used = _used(alice, project)["bytes"]  # the branch's marker object
    _quota(admin, project, used + 1000)
    assert _put(alice, project, "main/a.bin", b"a" * 600).status_code == 201
    refused = _put(alice, project, "main/b.bin", b"b" * 600)
    assert refused.status_code == 507, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "quota" in refused.json()["detail"]
    assert refused.json()["title"] == "Storage quota exceeded"

    def body() -> Iterator[bytes]:  # no Content-Length: refused as it arrives
        yield b"c" * 300
        yield b"c" * 300

    assert _put(alice, project, "main/c.bin", body()).status_code == 507
    started = alice.client.post(
        f"/api/v1/projects/{project['id']}/data/uploads", json={"path": "main/d", "size": 600}
    )
    assert started.status_code == 507
    listed = alice.client.get(f"/api/v1/projects/{project['id']}/data", params={"prefix": "main/"})
    assert [i["path"] for i in listed.json()["items"]] == ["main/a.bin", "main/readme.txt"]
    # Overwriting counts the new version only against what stays current.
    assert _put(alice, project, "main/e.bin", b"e" * 300).status_code == 201


def _s3(key: dict[str, Any]) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=key["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=key["accessKey"],
        aws_secret_access_key=key["secretKey"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _eventually(check: Any, timeout: float = 10.0) -> None:
    """Weed applies identity changes asynchronously (milliseconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not applied in time"
        time.sleep(0.05)


def _can_write(s3: BaseClient, bucket: str) -> bool:
    try:
        s3.put_object(Bucket=bucket, Key="main/probe.bin", Body=b"")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
        return False
    return True


def test_direct_writes_with_a_project_key_are_stopped_by_the_quota_sweep(
    ctx: AppContext, alice: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    pid, bucket = project["id"], project["bucket"]
    minted = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "laptop"})
    assert minted.status_code == 201, minted.text
    s3 = _s3(minted.json())
    _quota(admin, project, _used(alice, project)["bytes"] + 1000)
    # S3 itself knows no quota: the write lands, the sweep then closes the bucket.
    s3.put_object(Bucket=bucket, Key="main/stor.bin", Body=b"x" * 2000)
    assert enforce_quotas(ctx, pid) == 1
    _eventually(lambda: not _can_write(s3, bucket))
    assert s3.get_object(Bucket=bucket, Key="main/stor.bin")["Body"].read() == b"x" * 2000
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="main/stor.bin")
    # A key minted while over the quota can write until the next sweep closes it too.
    late = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "sen"})
    late_s3 = _s3(late.json())
    assert enforce_quotas(ctx, pid) == 0  # no change of state, but the new key closed
    _eventually(lambda: not _can_write(late_s3, bucket))
    audit = alice.client.get(f"/api/v1/projects/{pid}/audit").json()
    assert "data.quota" in {e["action"] for e in audit["events"]}

    # A member deletes data through Balsam; the next sweep opens the bucket again.
    assert alice.client.delete(f"/api/v1/projects/{pid}/data/main/stor.bin").status_code == 204
    assert enforce_quotas(ctx, pid) == 1
    _eventually(lambda: _can_write(s3, bucket))
    _eventually(lambda: _can_write(late_s3, bucket))


def test_unfinished_uploads_take_room_and_stale_direct_ones_are_aborted(
    ctx: AppContext, alice: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    """Parts waiting on the storage server take room: resumable uploads count what they
    announced, and multipart uploads begun straight through S3 and left are aborted."""
    pid, bucket = project["id"], project["bucket"]
    _quota(admin, project, _used(alice, project)["bytes"] + 10_000)
    start = f"/api/v1/projects/{pid}/data/uploads"
    first = alice.client.post(start, json={"path": "main/a.bin", "size": 6000})
    assert first.status_code == 201, first.text
    second = alice.client.post(start, json={"path": "main/b.bin", "size": 6000})
    assert second.status_code == 507, second.text  # the first one's 6000 are taken
    assert _put(alice, project, "main/c.bin", b"c" * 5000).status_code == 507

    minted = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "mp"})
    s3 = _s3(minted.json())
    left = s3.create_multipart_upload(Bucket=bucket, Key="main/lämnad.bin")["UploadId"]
    assert sweep_stale_multipart(ctx) == 0  # young: kept
    hours = ctx.settings.storage.upload_hours
    later = utcnow() + timedelta(hours=hours + 1)
    with patch("balsam.domain.data.uploads.utcnow", return_value=later):
        assert sweep_stale_multipart(ctx) >= 1
    remaining = ctx.providers.storage.objects._s3.list_multipart_uploads(Bucket=bucket)
    ids = {u["UploadId"] for u in remaining.get("Uploads", [])}
    assert left not in ids and ids  # the resumable upload's own is kept
    # Balsam's own resumable upload is its own sweep's: still there.
    assert alice.client.get(f"/api/v1/projects/{pid}/uploads/{first.json()['id']}").is_success
