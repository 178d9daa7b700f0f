"""The data API against the real SeaweedFS: upload, download, browse, versions,
restore, delete (recoverable), usage, provenance, and who may do it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import AuditEvent
from balsam.domain.data.service import DataService
from balsam.providers.storage.objects import PART_SIZE
from tests.fixtures.app import TestUser


def _url(project: dict[str, Any], path: str = "") -> str:
    base = f"/api/v1/projects/{project['id']}/data"
    return f"{base}/{quote(path)}" if path else base


def _put(user: TestUser, project: dict[str, Any], path: str, body: bytes) -> dict[str, Any]:
    answer = user.client.put(
        _url(project, path), content=body, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 201, answer.text
    written: dict[str, Any] = answer.json()
    return written


def test_an_upload_reads_back_as_written_and_is_listed_with_its_uploader(
    alice: TestUser, project: dict[str, Any]
) -> None:
    body = "år;värde\n2024;1\n".encode()
    written = _put(alice, project, "main/mapp/åäö data.csv", body)
    assert written["size"] == len(body)
    assert written["sha256"] == hashlib.sha256(body).hexdigest() and written["versionId"]

    got = alice.client.get(_url(project, "main/mapp/åäö data.csv"))
    assert got.status_code == 200 and got.content == body
    # Always a download, never a page of Balsam's origin.
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]

    top = alice.client.get(_url(project), params={"prefix": "main/"}).json()
    # main/readme.txt: the branch's marker, written when the branch was made
    assert top["prefixes"] == ["main/mapp/"]
    assert [i["path"] for i in top["items"]] == ["main/readme.txt"]
    inside = alice.client.get(_url(project), params={"prefix": "main/mapp/"}).json()
    [item] = inside["items"]
    assert item["path"] == "main/mapp/åäö data.csv" and item["size"] == len(body)
    assert item["uploadedBy"] == alice.username and item["modifiedAt"]

    provenance = alice.client.get(
        _url(project, "main/mapp/åäö data.csv"), params={"provenance": "true"}
    ).json()
    assert provenance["uploadedBy"] == alice.username and provenance["source"] == "upload"
    assert provenance["sha256"] == written["sha256"]
    assert provenance["contentType"] == "text/csv"
    # The branch's marker is Balsam's own, and says so.
    marker = alice.client.get(_url(project, "main/readme.txt"), params={"provenance": "true"})
    assert marker.json()["source"] == "branch created"
    assert marker.json()["uploadedBy"] == alice.username


def test_a_large_upload_goes_in_parts_and_arrives_whole(
    alice: TestUser, project: dict[str, Any]
) -> None:
    body = os.urandom(2 * PART_SIZE + 12345)
    written = _put(alice, project, "main/stor.bin", body)
    assert written["sha256"] == hashlib.sha256(body).hexdigest()
    got = alice.client.get(_url(project, "main/stor.bin"))
    assert got.status_code == 200 and got.content == body


def test_an_abandoned_upload_leaves_nothing_visible(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    write = DataService(ctx).begin_write(alice.actor, project["id"], "main/halv.bin", None)
    assert write.add(os.urandom(PART_SIZE + 1))
    write.flush()  # one part sent: a multipart upload exists on the server
    write.abort()
    objects = ctx.providers.storage.objects
    assert objects.head(project["bucket"], "main/halv.bin") is None
    s3 = objects._s3
    assert not s3.list_multipart_uploads(Bucket=project["bucket"]).get("Uploads")


def test_overwrite_delete_and_restore_keep_every_version(
    alice: TestUser, project: dict[str, Any]
) -> None:
    first = _put(alice, project, "main/x.csv", b"1\n")
    _put(alice, project, "main/x.csv", b"2\n")
    assert alice.client.delete(_url(project, "main/x.csv")).status_code == 204
    assert alice.client.get(_url(project, "main/x.csv")).status_code == 404

    versions = alice.client.get(_url(project, "main/x.csv"), params={"versions": "true"}).json()
    kinds = [(v["deleted"], v["current"], v["size"]) for v in versions["versions"]]
    assert kinds == [(True, True, 0), (False, False, 2), (False, False, 2)]
    assert [v["uploadedBy"] for v in versions["versions"][1:]] == [alice.username] * 2

    restored = alice.client.post(
        f"{_url(project, 'main/x.csv')}/restore", json={"versionId": first["versionId"]}
    )
    assert restored.status_code == 201, restored.text
    assert alice.client.get(_url(project, "main/x.csv")).content == b"1\n"
    provenance = alice.client.get(_url(project, "main/x.csv"), params={"provenance": "true"}).json()
    assert provenance["source"] == f"restore of {first['versionId']}"
    assert provenance["sha256"] == first["sha256"]
    assert provenance["contentType"] == "text/csv"  # kept, not the server's default

    missing = alice.client.post(
        f"{_url(project, 'main/x.csv')}/restore", json={"versionId": "nope"}
    )
    assert missing.status_code == 404


def test_deleting_a_folder_deletes_what_is_under_it_recoverably(
    alice: TestUser, project: dict[str, Any]
) -> None:
    for name in ("a.csv", "under/b.csv"):
        _put(alice, project, f"main/mapp/{name}", b"x")
    _put(alice, project, "main/kvar.csv", b"y")
    assert alice.client.delete(_url(project, "main/mapp/")).status_code == 204
    listing = alice.client.get(_url(project), params={"prefix": "main/"}).json()
    assert listing["prefixes"] == []
    assert [i["path"] for i in listing["items"]] == ["main/kvar.csv", "main/readme.txt"]
    versions = alice.client.get(_url(project, "main/mapp/a.csv"), params={"versions": "true"})
    assert [v["deleted"] for v in versions.json()["versions"]] == [True, False]
    assert alice.client.delete(_url(project, "main/mapp/")).status_code == 404


def test_usage_counts_bytes_and_objects_per_top_folder(
    alice: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, "main/a", b"123")
    _put(alice, project, "main/b/c", b"45")
    _put(alice, project, "tmp/d", b"6")
    usage = alice.client.get(f"/api/v1/projects/{project['id']}/usage").json()
    by_prefix = {p["prefix"]: (p["bytes"], p["objects"]) for p in usage["prefixes"]}
    assert by_prefix["main/"][0] >= 5 and by_prefix["tmp/"] == (1, 1)
    assert usage["bytes"] == sum(b for b, _ in by_prefix.values())


@pytest.mark.parametrize(
    "path", ["main/../x", "main//x", "main/./x", "main/a\x01b", "main/a\u202eb", "main/"]
)
def test_unusable_paths_are_refused(alice: TestUser, project: dict[str, Any], path: str) -> None:
    # Escaped, so that no client or server normalises the path before Balsam sees it.
    escaped = quote(path, safe="").replace(".", "%2E")
    answer = alice.client.put(f"{_url(project)}/{escaped}", content=b"x")
    assert answer.status_code in (404, 405, 422), answer.text
    assert answer.status_code != 201


def test_listing_refuses_a_prefix_that_is_not_a_folder(
    alice: TestUser, project: dict[str, Any]
) -> None:
    answer = alice.client.get(_url(project), params={"prefix": "main"})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_only_members_and_admins_reach_a_projects_data(
    alice: TestUser,
    make_user: Callable[..., TestUser],
    admin: TestUser,
    project: dict[str, Any],
) -> None:
    _put(alice, project, "main/hemlig.csv", b"s")
    stranger = make_user("stranger")
    for call in (
        lambda u: u.client.get(_url(project), params={"prefix": "main/"}),
        lambda u: u.client.get(_url(project, "main/hemlig.csv")),
        lambda u: u.client.put(_url(project, "main/hemlig.csv"), content=b"over"),
        lambda u: u.client.delete(_url(project, "main/hemlig.csv")),
        lambda u: u.client.get(f"/api/v1/projects/{project['id']}/usage"),
    ):
        assert call(stranger).status_code == 404
    assert alice.client.get(_url(project, "main/hemlig.csv")).content == b"s"
    assert admin.client.get(_url(project, "main/hemlig.csv")).content == b"s"


def test_metadata_written_straight_to_s3_does_not_forge_provenance(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    storage = ctx.providers.storage
    key = storage.create_key(project["bucket"], label="forger")
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=storage.endpoint_url,
            region_name=storage.region,
            aws_access_key_id=key.access_key,
            aws_secret_access_key=key.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )
        s3.put_object(
            Bucket=project["bucket"],
            Key="main/forged.csv",
            Body=b"f",
            Metadata={"balsam-uploaded-by": "admin", "balsam-source": "upload"},
        )
    finally:
        storage.revoke_key(key.access_key)
    provenance = alice.client.get(
        _url(project, "main/forged.csv"), params={"provenance": "true"}
    ).json()
    assert provenance["uploadedBy"] is None and provenance["sha256"] is None
    listing = alice.client.get(_url(project), params={"prefix": "main/"}).json()
    assert [i["uploadedBy"] for i in listing["items"] if i["path"] == "main/forged.csv"] == [None]


def test_changes_are_audited(ctx: AppContext, alice: TestUser, project: dict[str, Any]) -> None:
    _put(alice, project, "main/spår.csv", b"1")
    alice.client.delete(_url(project, "main/spår.csv"))
    with ctx.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.project_id == project["id"], AuditEvent.action.like("data.%")
            )
        ).all()
    assert {"data.write", "data.delete"} <= set(actions)


def _preview(user: TestUser, project: dict[str, Any], path: str) -> dict[str, Any]:
    answer = user.client.get(_url(project, path), params={"preview": "true"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_csv_preview_shows_header_types_and_the_first_hundred_rows(
    alice: TestUser, project: dict[str, Any]
) -> None:
    lines = ["län;år;andel"] + [f"Örebro;{2000 + i};{i},5" for i in range(300)]
    _put(alice, project, "main/län.csv", ("\n".join(lines) + "\n").encode())
    shown = _preview(alice, project, "main/län.csv")
    assert shown["kind"] == "csv" and shown["delimiter"] == ";"
    assert [(c["name"], c["type"]) for c in shown["columns"]] == [
        ("län", "string"),
        ("år", "integer"),
        ("andel", "double"),
    ]
    assert len(shown["rows"]) == 100 and shown["rows"][0] == ["Örebro", "2000", "0,5"]
    assert shown["truncated"] is True


def test_preview_of_a_large_csv_reads_its_head_only(
    alice: TestUser, project: dict[str, Any]
) -> None:
    row = "a,b,ö\n" + "".join(f"{i},{i * 2},text ö {i}\n" for i in range(200_000))
    _put(alice, project, "main/stor.csv", row.encode())
    shown = _preview(alice, project, "main/stor.csv")
    assert len(shown["rows"]) == 100 and shown["rows"][-1] == ["99", "198", "text ö 99"]
    assert shown["truncated"] is True


def test_parquet_and_jsonl_previews(alice: TestUser, project: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": list(range(5000)), "namn": [f"n{i}" for i in range(5000)]})
    out = pa.BufferOutputStream()
    pq.write_table(table, out, row_group_size=1000)
    _put(alice, project, "main/t.parquet", out.getvalue().to_pybytes())
    shown = _preview(alice, project, "main/t.parquet")
    assert shown["kind"] == "parquet" and shown["totalRows"] == 5000
    assert [c["name"] for c in shown["columns"]] == ["id", "namn"]
    assert len(shown["rows"]) == 100 and shown["rows"][1] == ["1", "n1"]

    _put(alice, project, "main/broken.parquet", b"PAR1 not really")
    assert _preview(alice, project, "main/broken.parquet")["error"]

    jsonl = b'{"a": 1, "b": "x"}\n{"a": 2, "c": [1, 2]}\nnot json\n'
    _put(alice, project, "main/rader.jsonl", jsonl)
    shown = _preview(alice, project, "main/rader.jsonl")
    assert [c["name"] for c in shown["columns"]] == ["a", "b", "c", "(not JSON)"]
    assert shown["rows"][1] == ["2", None, "[1, 2]", None]

    _put(alice, project, "main/notes.md", "# Rubrik\nåäö".encode())
    assert _preview(alice, project, "main/notes.md")["text"] == "# Rubrik\nåäö"
    _put(alice, project, "main/bild.png", b"\x89PNG")
    assert _preview(alice, project, "main/bild.png")["kind"] == "none"


def test_empty_and_multi_part_downloads_arrive_whole(
    alice: TestUser, project: dict[str, Any]
) -> None:
    from balsam.providers.storage.objects import DOWNLOAD_PART

    _put(alice, project, "main/tom.txt", b"")
    empty = alice.client.get(_url(project, "main/tom.txt"))
    assert empty.status_code == 200 and empty.content == b""
    body = os.urandom(3 * DOWNLOAD_PART + 7)
    _put(alice, project, "main/delar.bin", body)
    got = alice.client.get(_url(project, "main/delar.bin"))
    assert got.content == body and got.headers["content-length"] == str(len(body))


def test_temporary_data_expires_when_asked_or_after_the_default(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    from balsam.domain.data.temporary import expire_temporary

    put = alice.client.put(_url(project, "tmp/kort.csv"), content=b"a", params={"expiresInDays": 2})
    assert put.status_code == 201, put.text
    ctx.providers.storage.put_object(project["bucket"], "tmp/från-s3.csv", b"b")  # straight
    for path, days in (("main/x.csv", 2), ("tmp/lång.csv", 999)):
        refused = alice.client.put(
            _url(project, path), content=b"x", params={"expiresInDays": days}
        )
        assert refused.status_code == 422, refused.text

    listing = alice.client.get(_url(project), params={"prefix": "tmp/"}).json()
    expires = {i["path"]: datetime.fromisoformat(i["expiresAt"]) for i in listing["items"]}
    now = datetime.now(UTC)
    assert abs(expires["tmp/kort.csv"] - (now + timedelta(days=2))) < timedelta(minutes=5)
    assert abs(expires["tmp/från-s3.csv"] - (now + timedelta(days=7))) < timedelta(minutes=5)

    assert expire_temporary(ctx, now=now + timedelta(days=3)) >= 1
    left = alice.client.get(_url(project), params={"prefix": "tmp/"}).json()
    assert [i["path"] for i in left["items"]] == ["tmp/från-s3.csv"]
    versions = alice.client.get(_url(project, "tmp/kort.csv"), params={"versions": "true"})
    assert [v["deleted"] for v in versions.json()["versions"]] == [True, False]  # recoverable

    expire_temporary(ctx, now=now + timedelta(days=8))
    assert alice.client.get(_url(project), params={"prefix": "tmp/"}).json()["items"] == []
    with ctx.sessions() as session:
        audited = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.project_id == project["id"], AuditEvent.action == "data.expire"
            )
        ).all()
    assert len(audited) == 2


def test_moving_renames_files_and_folders_keeping_provenance_and_nothing_overwritten(
    alice: TestUser, project: dict[str, Any]
) -> None:
    written = _put(alice, project, "main/gammal/a.csv", b"a\n")
    _put(alice, project, "main/gammal/under/b.csv", b"b\n")
    _put(alice, project, "main/annan.csv", b"c\n")
    url = f"{_url(project, 'main/gammal/a.csv')}/move"
    assert alice.client.post(url, json={"to": "main/annan.csv"}).status_code == 409
    moved = alice.client.post(url, json={"to": "main/ny/a.csv"})
    assert moved.status_code == 200 and moved.json()["objects"] == 1, moved.text
    assert alice.client.get(_url(project, "main/ny/a.csv")).content == b"a\n"
    assert alice.client.get(_url(project, "main/gammal/a.csv")).status_code == 404
    provenance = alice.client.get(_url(project, "main/ny/a.csv"), params={"provenance": "true"})
    assert provenance.json()["source"] == "moved from main/gammal/a.csv"
    assert provenance.json()["sha256"] == written["sha256"]
    # The old place keeps the version: restorable there.
    versions = alice.client.get(_url(project, "main/gammal/a.csv"), params={"versions": "true"})
    assert [v["deleted"] for v in versions.json()["versions"]] == [True, False]

    folder = alice.client.post(
        f"{_url(project, 'main/gammal/')}/move", json={"to": "main/flyttad/"}
    )
    assert folder.status_code == 200 and folder.json()["objects"] == 1
    assert alice.client.get(_url(project, "main/flyttad/under/b.csv")).content == b"b\n"
    for bad in ({"to": "main/flyttad/inne/"}, {"to": "main/x.csv"}, {"to": "../x/"}):
        answer = alice.client.post(f"{_url(project, 'main/flyttad/')}/move", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    missing = alice.client.post(f"{_url(project, 'main/saknas.csv')}/move", json={"to": "main/y"})
    assert missing.status_code == 404


def test_a_deleted_folders_files_are_listed_for_restoring(
    alice: TestUser, project: dict[str, Any]
) -> None:
    for name in ("a.csv", "under/b.csv"):
        _put(alice, project, f"main/bort/{name}", f"{name}\n".encode())
    newest = _put(alice, project, "main/bort/a.csv", b"a2\n")
    _put(alice, project, "main/kvar.csv", b"k\n")
    assert alice.client.delete(_url(project, "main/bort/")).status_code == 204
    listed = alice.client.get(
        f"/api/v1/projects/{project['id']}/deleted", params={"prefix": "main/"}
    ).json()
    assert [i["path"] for i in listed["items"]] == ["main/bort/a.csv", "main/bort/under/b.csv"]
    first = listed["items"][0]
    assert first["versionId"] == newest["versionId"] and first["size"] == 3
    back = alice.client.post(
        f"{_url(project, 'main/bort/a.csv')}/restore", json={"versionId": first["versionId"]}
    )
    assert back.status_code == 201
    again = alice.client.get(
        f"/api/v1/projects/{project['id']}/deleted", params={"prefix": "main/bort/"}
    ).json()
    assert [i["path"] for i in again["items"]] == ["main/bort/under/b.csv"]
    for bad in ("main", "main/../", "/main/"):
        refused = alice.client.get(
            f"/api/v1/projects/{project['id']}/deleted", params={"prefix": bad}
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
