"""The project page's *Data* tab and its pages, through the portal: browsing a folder
a page at a time, a file's preview, facts and versions, restoring, deleting with a
confirmation, the usage; who may see them, and what they refuse."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from balsam.app import create_app
from balsam.context import AppContext
from balsam.db.models import DataImport
from balsam.web.pages import data_folder
from balsam.wiring import derive
from tests.fixtures.app import TestUser
from tests.fixtures.http_source import import_worker_paused
from tests.web.pages.browsing import ORIGIN, browser, post
from tests.web.test_pages import assert_only_balsams_scripts

XSS = "<img src=x onerror=alert(1)>.csv"


def _put(user: TestUser, project: dict[str, Any], path: str, body: bytes) -> dict[str, Any]:
    answer = user.client.put(f"/api/v1/projects/{project['id']}/data/{quote(path)}", content=body)
    assert answer.status_code == 201, answer.text
    written: dict[str, Any] = answer.json()
    return written


def _tab(project: dict[str, Any], path: str = "") -> str:
    query = {"tab": "data"} | ({"path": path} if path else {})
    return f"/projects/{project['id']}?{urlencode(query)}"


def _file(project: dict[str, Any], page: str = "file") -> str:
    return f"/projects/{project['id']}/data/{page}"


def test_a_member_sees_a_folder_escaped_with_sizes_and_uploaders(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, f"main/in/{XSS}", b"a,b\n1,2\n")
    _put(alice, project, "main/in/survey.csv", b"x" * 1500)
    with browser(app, alice) as client:
        top = client.get(_tab(project))
        inside = client.get(_tab(project, "main/in"))
    assert top.status_code == 200 and inside.status_code == 200, inside.text
    folder_link = f'href="/projects/{project["id"]}?branch=main&amp;tab=data&amp;path=main%2Fin"'
    assert f"{folder_link}>in/</a>" in top.text
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in inside.text
    assert "<img src=x" not in inside.text
    assert_only_balsams_scripts(inside.text)
    assert ">1.5 kB</td>" in inside.text and f"<td>{alice.username}</td>" in inside.text
    assert '<th scope="col">Name</th>' in inside.text  # a table with headers
    # Breadcrumbs: the branch's area, then the folder (the current one not a link).
    assert re.search(r'<a href="[^"]*path=main">main</a> / <span aria-current="location">in<',
                     inside.text)  # fmt: skip
    # Download straight from the API (an attachment there), delete by a confirmation page.
    assert f'href="/api/v1/projects/{project["id"]}/data/main/in/survey.csv"' in inside.text
    delete = f"/projects/{project['id']}/data/delete?branch=main&amp;path=main%2Fin%2Fsurvey.csv"
    assert f'href="{delete}"' in inside.text
    # The upload form: what the script needs, the CSRF token, a label for the files.
    form = re.search(r"<form id=\"upload\"[^>]*>", inside.text)
    assert form is not None and 'data-folder="main/in/"' in form.group(0)
    assert '<label for="upload-files">' in inside.text


def test_a_long_folder_comes_a_page_at_a_time(
    app: FastAPI, alice: TestUser, project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_folder, "DATA_PAGE", 2)
    for name in ("a.txt", "b.txt", "c.txt"):
        _put(alice, project, f"main/many/{name}", b"x")
    with browser(app, alice) as client:
        first = client.get(_tab(project, "main/many"))
        found = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert found is not None
        second = client.get(found.group(1).replace("&amp;", "&"))
    assert "a.txt" in first.text and "b.txt" in first.text and "c.txt" not in first.text
    assert "c.txt" in second.text and "a.txt<" not in second.text
    assert "First page" in second.text and 'rel="next"' not in second.text


def test_tmp_shows_when_each_file_expires(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, "tmp/scratch.csv", b"a\n1\n")
    with browser(app, alice) as client:
        page = client.get(_tab(project, "tmp"))
    assert page.status_code == 200
    assert '<th scope="col">Expires</th>' in page.text and "scratch.csv" in page.text
    assert 'id="upload-expires"' in page.text


def test_previews_of_a_table_a_text_and_a_download_only_file(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, "main/t.csv", b"year,name\n2024,<b>x</b>\n2025,y\n")
    _put(alice, project, "main/notes.txt", b"hello <script>alert(1)</script>\n")
    _put(alice, project, "main/blob.bin", b"\x00\x01")
    with browser(app, alice) as client:
        table = client.get(_file(project), params={"branch": "main", "path": "main/t.csv"})
        text = client.get(_file(project), params={"branch": "main", "path": "main/notes.txt"})
        blob = client.get(_file(project), params={"branch": "main", "path": "main/blob.bin"})
    assert table.status_code == 200, table.text
    assert '<th scope="col">year</th><th scope="col">name</th>' in table.text
    assert "<td>integer</td>" in table.text and "<td>&lt;b&gt;x&lt;/b&gt;</td>" in table.text
    assert "All 2 rows." in table.text
    assert f'href="/api/v1/projects/{project["id"]}/data/main/t.csv"' in table.text
    assert "hello &lt;script&gt;alert(1)&lt;/script&gt;" in text.text
    assert_only_balsams_scripts(text.text)
    assert "This kind of file has no preview" in blob.text


def test_versions_are_listed_and_restored_only_with_the_csrf_token(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    first = _put(alice, project, "main/v.txt", b"one")
    _put(alice, project, "main/v.txt", b"two")
    url = f"/api/v1/projects/{project['id']}/data/main/v.txt"
    with browser(app, alice) as client:
        page = client.get(_file(project), params={"branch": "main", "path": "main/v.txt"})
        assert page.text.count(f'action="/projects/{project["id"]}/data/restore"') == 1
        assert f'value="{first["versionId"]}"' in page.text
        fields = {"path": "main/v.txt", "version": first["versionId"], "branch": "main"}
        forged = client.post(_file(project, "restore"), data=fields, headers={"Origin": ORIGIN})
        assert forged.status_code == 403
        assert alice.client.get(url).content == b"two"
        done = post(client, _file(project, "restore"), fields)
        assert done.status_code == 303 and "done=restored" in done.headers["location"]
        assert "is restored" in client.get(done.headers["location"]).text
    assert alice.client.get(url).content == b"one"


def test_deleting_asks_first_needs_the_token_and_stays_restorable(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    written = _put(alice, project, "main/d/gone.csv", b"a\n1\n")
    _put(alice, project, "main/d/sub/x.txt", b"x")
    api = f"/api/v1/projects/{project['id']}/data/main/d/gone.csv"
    with browser(app, alice) as client:
        where = {"branch": "main", "path": "main/d/gone.csv"}
        ask = client.get(_file(project, "delete"), params=where)
        assert ask.status_code == 200 and "Delete the file gone.csv" in ask.text
        assert 'name="csrf"' in ask.text and 'action="/projects/' in ask.text
        fields = {"path": "main/d/gone.csv", "branch": "main"}
        forged = client.post(_file(project, "delete"), data=fields, headers={"Origin": ORIGIN})
        assert forged.status_code == 403 and alice.client.get(api).status_code == 200
        done = post(client, _file(project, "delete"), fields)
        assert done.status_code == 303, done.text
        folder = client.get(done.headers["location"])
        assert "Deleted." in folder.text and ">gone.csv</a>" not in folder.text
        versions_link = re.search(r'<a href="([^"]+)">Versions of gone.csv</a>', folder.text)
        assert versions_link is not None
        versions = client.get(versions_link.group(1).replace("&amp;", "&"))
        assert "This file is deleted." in versions.text
        assert f'value="{written["versionId"]}"' in versions.text
        # A folder: its own confirmation, and everything under it goes.
        ask = client.get(_file(project, "delete"), params={"branch": "main", "path": "main/d/"})
        assert "Delete the folder d" in ask.text
        done = post(client, _file(project, "delete"), {"path": "main/d/", "branch": "main"})
        assert done.status_code == 303 and "done=folder-deleted" in done.headers["location"]
    under = alice.client.get(f"/api/v1/projects/{project['id']}/data/main/d/sub/x.txt")
    assert under.status_code == 404


def test_usage_per_folder(app: FastAPI, alice: TestUser, project: dict[str, Any]) -> None:
    _put(alice, project, "main/u.bin", b"x" * 2500)
    _put(alice, project, "tmp/u.bin", b"x" * 10)
    with browser(app, alice) as client:
        page = client.get(_file(project, "usage"), params={"branch": "main"})
    assert page.status_code == 200
    assert re.search(r'<th scope="row">main/</th><td title="\d+ bytes">2.\d kB</td>', page.text)
    tmp = r'<th scope="row">tmp/</th><td title="10 bytes">10 B</td><td>1</td>'
    assert re.search(tmp, page.text)


def test_a_new_folder_is_opened_and_bad_names_refused(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    url = _file(project, "folder")
    with browser(app, alice) as client:
        made = client.get(url, params={"branch": "main", "in": "main/", "name": "års data"})
        assert made.status_code == 303
        page = client.get(made.headers["location"])
        assert "This folder is empty." in page.text
        assert 'data-folder="main/års data/"' in page.text
        for bad in ("..", "", "a//b"):
            refused = client.get(url, params={"branch": "main", "in": "main/", "name": bad})
            assert refused.status_code == 422, bad


@pytest.mark.parametrize(
    ("page", "path"),
    [("tab", "main/../etc"), ("file", "main/../x.csv"), ("delete", "main/./x"),
     ("file", "/main/x"), ("delete", "main//")],
)  # fmt: skip
def test_paths_with_dot_dot_and_empty_parts_are_refused(
    app: FastAPI, alice: TestUser, project: dict[str, Any], page: str, path: str
) -> None:
    with browser(app, alice) as client:
        if page == "tab":
            answer = client.get(_tab(project, path))
        else:
            answer = client.get(_file(project, page), params={"branch": "main", "path": path})
    assert answer.status_code in (404, 422), answer.text
    assert "Not a usable data path" in answer.text or "No such folder" in answer.text


def test_another_branchs_area_is_not_this_tabs(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    with browser(app, alice) as client:
        answer = client.get(_tab(project, "elsewhere/x"))
    assert answer.status_code == 404 and "No such folder in this branch" in answer.text


def test_non_members_are_told_nothing_and_strangers_go_to_log_in(
    app: FastAPI, alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, "main/secret.csv", b"a\n1\n")
    pid = project["id"]
    gets = [(_tab(project), {}), (_file(project), {"branch": "main", "path": "main/secret.csv"}),
            (_file(project, "delete"), {"branch": "main", "path": "main/secret.csv"}),
            (_file(project, "usage"), {"branch": "main"}),
            (_file(project, "folder"), {"branch": "main", "in": "main/", "name": "n"}),
            (_file(project, "deleted"), {"branch": "main", "path": "main/"})]  # fmt: skip
    with browser(app, bob) as other:
        for url, params in gets:
            answer = other.get(url, params=params)
            assert answer.status_code == 404, (url, answer.status_code)
            assert "secret.csv" not in answer.text.split('<main id="main">', 1)[1]
        for page in ("delete", "restore", "move", "uploads/discard"):
            fields = {"path": "main/secret.csv", "branch": "main", "version": "x", "to": "main/y",
                      "upload": "x"}  # fmt: skip
            assert post(other, f"/projects/{pid}/data/{page}", fields).status_code == 404
    assert alice.client.get(f"/api/v1/projects/{pid}/data/main/secret.csv").status_code == 200
    with browser(app) as anonymous:
        for url, params in gets:
            answer = anonymous.get(url, params=params)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        posted = anonymous.post(f"/projects/{pid}/data/delete", data={"path": "main/secret.csv"},
                                headers={"Origin": ORIGIN})  # fmt: skip
        assert posted.status_code == 303 and posted.headers["location"].startswith("/login")
    assert alice.client.get(f"/api/v1/projects/{pid}/data/main/secret.csv").status_code == 200


def test_a_script_cannot_read_the_data_pages(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    """Code in a workspace (on Balsam's origin) must not fetch a page with the session's
    CSRF token in it."""
    with browser(app, alice) as client:
        answer = client.get(_tab(project), headers={"Sec-Fetch-Mode": "cors"})
    assert answer.status_code == 403 and 'name="csrf"' not in answer.text


def test_the_pages_script_writes_with_the_session_and_its_csrf_token_only(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    """What ``uploadFile`` does: a PUT to the data API with the session cookie and the
    token the upload form carries; without the token the API refuses it."""
    url = f"/api/v1/projects/{project['id']}/data/main/up.txt"
    with browser(app, alice) as client:
        page = client.get(_tab(project))
        form = re.search(r'<form id="upload".*?name="csrf" value="([^"]+)"', page.text, re.S)
        assert form is not None
        refused = client.put(url, content=b"no token")
        assert refused.status_code == 403
        written = client.put(url, content=b"hello", headers={"X-CSRF-Token": form.group(1)})
        assert written.status_code == 201, written.text
    assert alice.client.get(url).content == b"hello"


def test_a_file_is_moved_from_its_page_only_with_the_token_and_within_the_area(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, "main/gammalt.csv", b"a,b\n1,2\n")
    _put(alice, project, "main/upptagen.csv", b"x\n")
    api = f"/api/v1/projects/{project['id']}/data"
    with browser(app, alice) as client:
        page = client.get(_file(project), params={"branch": "main", "path": "main/gammalt.csv"})
        assert f'action="/projects/{project["id"]}/data/move"' in page.text
        fields = {"path": "main/gammalt.csv", "to": "main/nytt/namn.csv", "branch": "main"}
        forged = client.post(_file(project, "move"), data=fields, headers={"Origin": ORIGIN})
        assert forged.status_code == 403
        for to in ("main/upptagen.csv", "annan-gren/x.csv", "main/../x.csv"):
            refused = post(client, _file(project, "move"), {**fields, "to": to})
            assert refused.status_code in (404, 409, 422), (to, refused.status_code)
        done = post(client, _file(project, "move"), fields)
        assert done.status_code == 303 and "done=moved" in done.headers["location"]
        assert "Moved here" in client.get(done.headers["location"]).text
    assert alice.client.get(f"{api}/main/nytt/namn.csv").content == b"a,b\n1,2\n"
    assert alice.client.get(f"{api}/main/gammalt.csv").status_code == 404
    assert alice.client.get(f"{api}/main/upptagen.csv").content == b"x\n"


def test_a_deleted_folders_files_are_found_from_its_parent(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    _put(alice, project, "main/bort/<b>a</b>.csv", b"a\n")
    assert alice.client.delete(f"/api/v1/projects/{project['id']}/data/main/bort/").is_success
    with browser(app, alice) as client:
        folder = client.get(_tab(project, "main"))
        link = f"/projects/{project['id']}/data/deleted?" + urlencode(
            {"branch": "main", "path": "main/"}
        )
        assert link.replace("&", "&amp;") in folder.text
        page = client.get(link)
        assert page.status_code == 200
        assert "main/bort/&lt;b&gt;a&lt;/b&gt;.csv" in page.text  # escaped
        assert _file(project) + "?" in page.text
        outside = client.get(_file(project, "deleted"), params={"branch": "main", "path": "annan/"})
        assert outside.status_code == 404


def _start_upload(user: TestUser, project: dict[str, Any], path: str) -> dict[str, Any]:
    started = user.client.post(
        f"/api/v1/projects/{project['id']}/data/uploads", json={"path": path, "size": 100}
    )
    assert started.status_code == 201, started.text
    upload: dict[str, Any] = started.json()
    return upload


def test_unfinished_uploads_are_shown_where_they_go_and_discarded_by_their_owner_only(
    app: FastAPI, alice: TestUser, bob: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    pid = project["id"]
    upload = _start_upload(alice, project, f"main/in/{XSS}")
    sent = alice.client.put(f"/api/v1/projects/{pid}/uploads/{upload['id']}/parts/1",
                            content=b"x" * 100)  # fmt: skip
    assert sent.status_code == 200, sent.text
    fields = {"upload": upload["id"], "branch": "main"}
    discard = f"/projects/{pid}/data/uploads/discard"
    with browser(app, alice) as client:
        page = client.get(_tab(project, "main/in"))
        assert "Your unfinished uploads here" in page.text
        assert "100 B of 100 B received" in page.text
        assert XSS not in page.text and "&lt;img src=x onerror=alert(1)&gt;.csv" in page.text
        assert f'value="{upload["id"]}"' in page.text
        assert "unfinished uploads" not in client.get(_tab(project, "main/elsewhere")).text
        forged = client.post(discard, data=fields, headers={"Origin": ORIGIN})
        assert forged.status_code == 403
    # Another user's upload is nobody else's to discard: not a member (bob), nor an
    # admin who reaches the project's data.
    with browser(app, bob) as other:
        assert post(other, discard, fields).status_code == 404
    with browser(app, admin) as other:
        assert post(other, discard, fields).status_code == 404
        assert post(other, discard, {"upload": "../../x", "branch": "main"}).status_code == 404
    assert alice.client.get(f"/api/v1/projects/{pid}/uploads/{upload['id']}").status_code == 200
    with browser(app, alice) as client:
        done = post(client, discard, fields)
        assert done.status_code == 303 and "done=upload-discarded" in done.headers["location"]
        assert "path=main%2Fin" in done.headers["location"]
        after = client.get(done.headers["location"])
        assert "The unfinished upload is discarded." in after.text
        assert "Your unfinished uploads here" not in after.text
    assert alice.client.get(f"/api/v1/projects/{pid}/uploads/{upload['id']}").status_code == 404


def test_a_file_is_fetched_from_a_web_address_into_the_folder_shown(
    app: FastAPI, ctx: AppContext, alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    settings = ctx.settings.model_copy(update={"source_private_hosts": ["127.0.0.1:8999"]})
    pid, form = project["id"], f"/projects/{project['id']}/data/imports"
    fields = {"branch": "main", "folder": "main/raw/", "name": "",
              "url": "http://127.0.0.1:8999/tabell.csv?x=1&y=2"}  # fmt: skip
    # Queued only: this app is not served with its lifespan, and the session app's
    # worker waits meanwhile (it would fetch with other settings).
    with import_worker_paused(app):
        allowing = create_app(settings, ctx=derive(ctx, settings=settings))
        try:
            with browser(allowing, alice) as client:
                forged = client.post(form, data=fields, headers={"Origin": ORIGIN})
                assert forged.status_code == 403
                done = post(client, form, fields)
                assert done.status_code == 303 and "done=import-queued" in done.headers["location"]
                assert "path=main%2Fraw" in done.headers["location"]
                page = client.get(done.headers["location"]).text
                assert (
                    "The import has started" in page and "Latest imports into this folder" in page
                )
                assert ">tabell.csv</th>" in page and "Waiting" in page
                assert "http://127.0.0.1:8999/tabell.csv?x=1&amp;y=2" in page
                named = post(client, form, {**fields, "name": XSS})
                assert named.status_code == 303
                page = client.get(named.headers["location"]).text
                assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;.csv" in page
                # Another port of the allowed host (the storage server's, say), or no address.
                other_port = {**fields, "url": "http://127.0.0.1:9340/status"}
                assert post(client, form, other_port).status_code == 422
                assert post(client, form, {**fields, "url": ""}).status_code == 422
                outside = {**fields, "folder": "other-branch/"}
                assert post(client, form, outside).status_code == 404
            with browser(allowing, bob) as stranger:
                assert post(stranger, form, fields).status_code == 404
            items = alice.client.get(f"/api/v1/projects/{pid}/imports").json()["items"]
            assert {i["target"] for i in items} == {"main/raw/tabell.csv", f"main/raw/{XSS}"}
            assert {i["createdBy"] for i in items} == {alice.username}
        finally:
            with ctx.sessions() as session, session.begin():
                session.execute(delete(DataImport).where(DataImport.project_id == pid))
