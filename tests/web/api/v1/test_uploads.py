"""Resumable uploads against the real SeaweedFS: parts in any order, a dropped
connection resumed, nothing visible before completion, abandoned uploads swept, and
who may touch an upload."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from sqlalchemy import update

from balsam.context import AppContext
from balsam.db.models import DataUpload, utcnow
from balsam.domain.data.uploads import part_size_for, sweep_uploads
from balsam.providers.storage.objects import PART_SIZE
from balsam.web.slots import Slots
from tests.fixtures.app import TestUser
from tests.fixtures.postgres import postgres_selected

MIB = 1024 * 1024


def _start(user: TestUser, project: dict[str, Any], path: str, size: int) -> dict[str, Any]:
    answer = user.client.post(
        f"/api/v1/projects/{project['id']}/data/uploads", json={"path": path, "size": size}
    )
    assert answer.status_code == 201, answer.text
    started: dict[str, Any] = answer.json()
    return started


def _base(project: dict[str, Any], upload: dict[str, Any]) -> str:
    return f"/api/v1/projects/{project['id']}/uploads/{upload['id']}"


def _send(
    user: TestUser, project: dict[str, Any], upload: dict[str, Any], n: int, data: bytes
) -> httpx.Response:
    return user.client.put(f"{_base(project, upload)}/parts/{n}", content=data)


def test_parts_in_any_order_make_the_object_only_when_completed(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    body = os.urandom(2 * PART_SIZE + 4321)
    upload = _start(alice, project, "main/stor/fil.bin", len(body))
    assert upload["partSize"] == PART_SIZE and upload["partsTotal"] == 3
    chunks = [body[i : i + PART_SIZE] for i in range(0, len(body), PART_SIZE)]
    for number in (3, 1):
        answer = _send(alice, project, upload, number, chunks[number - 1])
        assert answer.status_code == 200, answer.text
    state = alice.client.get(_base(project, upload)).json()
    assert [p["number"] for p in state["parts"]] == [1, 3]
    assert state["received"] == len(chunks[0]) + len(chunks[2])

    early = alice.client.post(f"{_base(project, upload)}/complete")
    assert early.status_code == 409 and early.json()["detail"] == "Parts are missing: 2."
    # Nothing visible before completion.
    assert ctx.providers.storage.objects.head(project["bucket"], "main/stor/fil.bin") is None

    assert _send(alice, project, upload, 2, chunks[1]).status_code == 200
    done = alice.client.post(f"{_base(project, upload)}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(body).hexdigest()
    got = alice.client.get(f"/api/v1/projects/{project['id']}/data/main/stor/fil.bin")
    assert got.content == body
    provenance = alice.client.get(
        f"/api/v1/projects/{project['id']}/data/main/stor/fil.bin", params={"provenance": "true"}
    ).json()
    assert provenance["uploadedBy"] == alice.username and provenance["source"] == "upload"
    # The upload is gone once completed.
    assert alice.client.get(_base(project, upload)).status_code == 404


def test_a_part_sent_again_with_other_bytes_counts_with_those(
    alice: TestUser, project: dict[str, Any]
) -> None:
    """The SHA-256 is hashed as parts arrive in order; a part replaced after it was
    hashed must not leave the old bytes in it."""
    first, second = os.urandom(PART_SIZE), os.urandom(100)
    upload = _start(alice, project, "main/igen.bin", PART_SIZE + 100)
    assert _send(alice, project, upload, 1, first).status_code == 200
    assert _send(alice, project, upload, 2, second).status_code == 200
    replaced = os.urandom(PART_SIZE)
    assert _send(alice, project, upload, 1, replaced).status_code == 200
    done = alice.client.post(f"{_base(project, upload)}/complete").json()
    assert done["sha256"] == hashlib.sha256(replaced + second).hexdigest()
    got = alice.client.get(f"/api/v1/projects/{project['id']}/data/main/igen.bin").content
    assert got == replaced + second


def test_a_part_of_the_wrong_length_or_number_is_refused(
    alice: TestUser, project: dict[str, Any]
) -> None:
    upload = _start(alice, project, "main/x.bin", PART_SIZE + 10)
    assert _send(alice, project, upload, 2, b"123456789").status_code == 422
    assert _send(alice, project, upload, 1, b"short").status_code == 422
    assert _send(alice, project, upload, 3, b"x" * 10).status_code == 422
    assert _send(alice, project, upload, 2, b"x" * 11).status_code == 422
    assert alice.client.get(_base(project, upload)).json()["parts"] == []


def test_an_empty_object_and_an_aborted_upload(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    empty = _start(alice, project, "main/tom.txt", 0)
    assert empty["partsTotal"] == 0
    done = alice.client.post(f"{_base(project, empty)}/complete")
    assert done.status_code == 201 and done.json()["size"] == 0

    upload = _start(alice, project, "main/avbruten.bin", PART_SIZE + 1)
    assert _send(alice, project, upload, 1, b"a" * PART_SIZE).status_code == 200
    assert alice.client.delete(_base(project, upload)).status_code == 204
    assert alice.client.get(_base(project, upload)).status_code == 404
    s3 = ctx.providers.storage.objects._s3
    assert not s3.list_multipart_uploads(Bucket=project["bucket"]).get("Uploads")


def test_only_the_member_who_started_an_upload_reaches_it(
    alice: TestUser, bob: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    upload = _start(alice, project, "main/min.bin", 5)
    # bob is no member (the project does not exist for him); an admin reaches the
    # project's data but not alice's upload.
    for user in (bob, admin):
        assert user.client.get(_base(project, upload)).status_code == 404
        assert _send(user, project, upload, 1, b"12345").status_code == 404
        assert user.client.post(f"{_base(project, upload)}/complete").status_code == 404
        assert user.client.delete(_base(project, upload)).status_code == 404
    assert (
        bob.client.post(
            f"/api/v1/projects/{project['id']}/data/uploads", json={"path": "main/y", "size": 1}
        ).status_code
        == 404
    )
    listed = alice.client.get(f"/api/v1/projects/{project['id']}/uploads").json()["uploads"]
    assert [u["id"] for u in listed] == [upload["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"path": "main/../x", "size": 1},
        {"path": "main/x", "size": -1},
        {"path": "main/x", "size": 10**15},
        {"path": "main/x"},
        {"path": "main/x", "size": 1, "expiresInDays": 3},  # not under tmp/
    ],
)
def test_bad_starts_are_refused(
    alice: TestUser, project: dict[str, Any], body: dict[str, Any]
) -> None:
    answer = alice.client.post(f"/api/v1/projects/{project['id']}/data/uploads", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_part_sizes_grow_for_huge_objects_only() -> None:
    assert part_size_for(0) == PART_SIZE
    assert part_size_for(10_000 * PART_SIZE) == PART_SIZE
    assert part_size_for(10_000 * PART_SIZE + 1) == PART_SIZE + MIB


def test_abandoned_uploads_are_aborted_by_the_sweep(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    upload = _start(alice, project, "main/glömd.bin", PART_SIZE + 1)
    assert _send(alice, project, upload, 1, b"g" * PART_SIZE).status_code == 200
    assert sweep_uploads(ctx) == 0  # young: kept
    with ctx.sessions() as session, session.begin():
        old = utcnow() - timedelta(hours=ctx.settings.storage.upload_hours + 1)
        session.execute(update(DataUpload).where(DataUpload.id == upload["id"]).values(
            created_at=old))  # fmt: skip
    assert sweep_uploads(ctx) >= 1
    assert alice.client.get(_base(project, upload)).status_code == 404
    s3 = ctx.providers.storage.objects._s3
    assert not s3.list_multipart_uploads(Bucket=project["bucket"]).get("Uploads")


def _file_of(path: Path, size: int) -> str:
    """``path`` filled with ``size`` random bytes; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MIB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def _cut_off(data: bytes) -> Iterator[bytes]:
    """Half a part, then the connection drops (as a closed laptop lid would)."""
    yield data[: len(data) // 2]
    raise ConnectionResetError("dropped")


def test_a_gigabyte_round_trip_cut_half_way_and_resumed(
    ctx: AppContext,
    alice: TestUser,
    project: dict[str, Any],
    tmp_path: Path,
    live_url: str,
) -> None:
    """The browser's way: parts from a file, the connection dropped half way through a
    part, the upload state asked for, the rest sent, completed, downloaded."""
    if postgres_selected():
        pytest.skip("a gigabyte through storage: the SQLite pass has run it")
    size = 1024 * MIB + 12345
    source = tmp_path / "stor.bin"
    expected = _file_of(source, size)
    upload = _start(alice, project, "main/gigabyte.bin", size)
    total, part = upload["partsTotal"], upload["partSize"]
    client = httpx.Client(base_url=live_url, headers=alice.headers, timeout=120)
    with source.open("rb") as file:

        def read(number: int) -> bytes:
            file.seek((number - 1) * part)
            return file.read(part)

        def send(number: int) -> None:
            answer = client.put(f"{_base(project, upload)}/parts/{number}", content=read(number))
            assert answer.status_code == 200, answer.text

        half = total // 2
        for number in range(1, half):
            send(number)
        with pytest.raises((httpx.TransportError, ConnectionResetError)):
            client.put(
                f"{_base(project, upload)}/parts/{half}",
                content=_cut_off(read(half)),
                headers={"Content-Length": str(part)},
            )
        # The client comes back (a new connection) and asks what arrived.
        client.close()
        client = httpx.Client(base_url=live_url, headers=alice.headers, timeout=120)
        held = {p["number"] for p in client.get(_base(project, upload)).json()["parts"]}
        assert held == set(range(1, half))
        for number in range(1, total + 1):
            if number not in held:
                send(number)
    done = client.post(f"{_base(project, upload)}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == expected
    digest = hashlib.sha256()
    with client.stream("GET", f"/api/v1/projects/{project['id']}/data/main/gigabyte.bin") as got:
        assert got.status_code == 200
        for chunk in got.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == expected
    client.close()


def test_a_user_with_too_many_uploads_at_once_is_asked_to_wait(
    app: Any, ctx: AppContext, alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    """Each upload body holds parts in memory: one user's bodies at once are bounded
    (429 with Retry-After, which the portal's script waits out), others' are not."""
    upload = _start(alice, project, "main/kö.bin", 5)
    storage = ctx.settings.storage
    if getattr(app.state, "upload_slots", None) is None:
        app.state.upload_slots = Slots(storage.max_uploads, storage.max_uploads_per_user)
    slots = app.state.upload_slots
    for _ in range(storage.max_uploads_per_user):  # alice's uploads in flight
        assert slots.take(alice.username)
    try:
        busy = _send(alice, project, upload, 1, b"12345")
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1", busy.text
        put = alice.client.put(f"/api/v1/projects/{project['id']}/data/main/x", content=b"x")
        assert put.status_code == 429
        assert alice.client.post(
            f"/api/v1/projects/{project['id']}/members", json={"username": bob.username}
        ).is_success
        other = bob.client.put(f"/api/v1/projects/{project['id']}/data/main/x", content=b"x")
        assert other.status_code == 201, other.text
    finally:
        for _ in range(storage.max_uploads_per_user):
            slots.give(alice.username)
    assert _send(alice, project, upload, 1, b"12345").status_code == 200


def test_a_body_that_stops_arriving_ends_its_request(
    ctx: AppContext, alice: TestUser, project: dict[str, Any], live_url: str
) -> None:
    """A part whose body pauses past storage.body_idle_seconds is ended (408) and gives
    its slot back, so stalled bodies cannot hold every slot."""
    import socket
    from urllib.parse import urlsplit

    from balsam.settings import StorageSettings

    upload = _start(alice, project, "main/trög.bin", PART_SIZE + 1)
    storage = ctx.settings.storage
    quick = StorageSettings.model_validate({**storage.model_dump(), "body_idle_seconds": 1})
    ctx.settings.__dict__["storage"] = quick  # this test's app context only, restored below
    try:
        where = urlsplit(live_url)
        with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
            head = (
                f"PUT {_base(project, upload)}/parts/1 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {alice.token}\r\nContent-Length: {PART_SIZE}\r\n\r\n"
            )
            conn.sendall(head.encode() + b"x" * 1000)
            answer = conn.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 408"), answer
    finally:
        ctx.settings.__dict__["storage"] = storage
    assert alice.client.get(_base(project, upload)).json()["parts"] == []


def test_an_upload_completed_through_s3_with_other_parts_is_not_recorded_as_its_owners(
    alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    """A member with an S3 key may complete another's upload first, with a part of their
    own; the storage server then answers the owner's completion with that object. It
    must not be recorded as the owner's, nor with the hash of the owner's bytes."""
    pid = project["id"]
    added = alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    assert added.status_code in (200, 201), added.text
    key = bob.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "s3"}).json()
    s3 = boto3.client("s3", endpoint_url=key["endpoint"], region_name="us-east-1",
                      aws_access_key_id=key["accessKey"], aws_secret_access_key=key["secretKey"],
                      config=Config(s3={"addressing_style": "path"}))  # fmt: skip
    first, second = os.urandom(PART_SIZE), os.urandom(100)
    upload = _start(alice, project, "main/swap.bin", PART_SIZE + 100)
    assert _send(alice, project, upload, 1, first).status_code == 200
    assert _send(alice, project, upload, 2, second).status_code == 200

    bucket = project["bucket"]
    found = s3.list_multipart_uploads(Bucket=bucket, Prefix="main/swap.bin")["Uploads"]
    s3_id = found[0]["UploadId"]
    parts = s3.list_parts(Bucket=bucket, Key="main/swap.bin", UploadId=s3_id)["Parts"]
    swapped = s3.upload_part(Bucket=bucket, Key="main/swap.bin", UploadId=s3_id, PartNumber=2,
                             Body=b"bob's bytes!" + os.urandom(88))["ETag"]  # fmt: skip
    s3.complete_multipart_upload(Bucket=bucket, Key="main/swap.bin", UploadId=s3_id,
                                 MultipartUpload={"Parts": [
                                     {"PartNumber": 1, "ETag": parts[0]["ETag"]},
                                     {"PartNumber": 2, "ETag": swapped}]})  # fmt: skip

    done = alice.client.post(f"{_base(project, upload)}/complete")
    assert done.status_code == 409, done.text
    assert "completed outside Balsam" in done.json()["detail"]
    assert alice.client.get(_base(project, upload)).status_code == 404
    facts = alice.client.get(f"/api/v1/projects/{pid}/data/main/swap.bin",
                             params={"provenance": "true"}).json()  # fmt: skip
    assert facts.get("uploadedBy") != alice.username
    assert facts.get("sha256") != hashlib.sha256(first + second).hexdigest()
