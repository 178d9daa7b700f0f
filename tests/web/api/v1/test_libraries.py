"""Knowledge libraries over HTTP: upstream's contract, the registry, permissions,
content served from git, and nothing active reaching a browser."""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from balsam.app import create_app
from balsam.context import AppContext
from balsam.domain.library.service import LibraryService
from balsam.domain.projects.naming import encode_file_id
from balsam.wiring import derive
from tests.fixtures.app import TestUser
from tests.fixtures.library import (
    ADVERSARIAL_FILES,
    BIG_SIZE,
    SCB_LIBRARY,
    SHARED,
    active_content,
    commit_files,
    file_url,
    make_repo,
)

API = "/api/v1/knowledge-libraries"
README_ID = encode_file_id("README.md")


def local(url: str, ctx: AppContext) -> str:
    return url.removeprefix(ctx.settings.resolved_public_url)


def wait_for(client: httpx.Client, library_id: str, status: str = "ok") -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = client.get(f"{API}/{library_id}").json()
        if body["syncStatus"] == status:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


@pytest.fixture
def source(sources_root: Path, unique: Callable[[str], str]) -> Path:
    return make_repo(
        sources_root / unique("api-src"),
        {"README.md": "# Läs mig\n\nHej från biblioteket.\n".encode(), "Articles/A.md": b"# A\n"},
    )


@pytest.fixture
def fresh(
    ctx: AppContext, library_admin: TestUser, source: Path, unique: Callable[[str], str]
) -> str:
    """A synced library of its own (safe to change or delete)."""
    r = library_admin.client.post(
        API, json={"name": unique("Eget bibliotek "), "repositoryUrl": file_url(source)}
    )
    assert r.status_code == 201, r.text
    LibraryService(ctx).sync(r.json()["id"])
    return str(r.json()["id"])


# -- the registry ------------------------------------------------------------------------


def test_create_registers_and_syncs_in_the_background(
    library_admin: TestUser, source: Path, unique: Callable[[str], str]
) -> None:
    name = unique("Årsbok för Åland ")
    r = library_admin.client.post(
        API,
        json={
            "name": name,
            "description": "Beskrivning",
            "repositoryUrl": file_url(source),
            "branch": "main",
            "repositoryFriendlyUrl": "https://example.org/lib",
        },
    )

    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("arsbok-for-aland") and body["name"] == name
    assert body["syncStatus"] in {"pending", "syncing", "ok"}
    synced = wait_for(library_admin.client, body["id"])
    assert synced["lastSyncedCommit"] and synced["lastSyncedAt"] and synced["syncError"] is None
    assert synced["repositoryFriendlyUrl"] == "https://example.org/lib"
    assert synced["branch"] == "main" and synced["description"] == "Beskrivning"


def test_list_has_upstreams_fields(alice: TestUser, scb_library: dict[str, Any]) -> None:
    r = alice.client.get(API)
    assert r.status_code == 200
    listed = next(lib for lib in r.json() if lib["id"] == scb_library["id"])
    assert listed == scb_library
    assert set(listed) == {
        "id",
        "name",
        "description",
        "repositoryUrl",
        "repositoryFriendlyUrl",
        "branch",
        "syncStatus",
        "lastSyncedCommit",
        "lastSyncedAt",
        "syncError",
    }


def test_update_and_delete(library_admin: TestUser, fresh: str, ctx: AppContext) -> None:
    client = library_admin.client
    r = client.patch(f"{API}/{fresh}", json={"description": "ny", "repositoryFriendlyUrl": None})
    assert r.status_code == 200 and r.json()["description"] == "ny"
    assert r.json()["repositoryFriendlyUrl"] is None

    assert client.delete(f"{API}/{fresh}").status_code == 204
    assert client.get(f"{API}/{fresh}").status_code == 404
    assert not (ctx.settings.data_dir / "libraries" / f"{fresh}.git").exists()
    assert client.delete(f"{API}/{fresh}").status_code == 404


def test_sync_is_accepted_and_runs_in_the_background(
    library_admin: TestUser, fresh: str, source: Path
) -> None:
    commit = commit_files(source, {"new.md": b"# Ny\n"})

    r = library_admin.client.post(f"{API}/{fresh}/sync")

    assert r.status_code == 202 and r.json()["id"] == fresh
    deadline = time.monotonic() + 30
    while library_admin.client.get(f"{API}/{fresh}").json()["lastSyncedCommit"] != commit:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_broken_url_keeps_the_last_good_commit(
    library_admin: TestUser, fresh: str, ctx: AppContext, sources_root: Path
) -> None:
    client = library_admin.client
    good = client.get(f"{API}/{fresh}").json()["lastSyncedCommit"]
    broken = file_url(sources_root / "does-not-exist")
    assert client.patch(f"{API}/{fresh}", json={"repositoryUrl": broken}).status_code == 200

    LibraryService(ctx).sync(fresh)

    body = wait_for(client, fresh, "failed")
    assert body["lastSyncedCommit"] == good and body["syncError"]
    r = client.get(f"{API}/{fresh}/files/{README_ID}")
    assert r.status_code == 200 and "Hej från biblioteket" in r.text


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"repositoryUrl": "ssh://git@github.com/x.git"}, 422),
        ({"repositoryUrl": "git://github.com/x.git"}, 422),
        ({"repositoryUrl": "javascript:alert(1)"}, 422),
        ({"repositoryUrl": "--upload-pack=touch /tmp/x"}, 422),
        ({"repositoryUrl": "file:///etc"}, 422),
        ({"repositoryUrl": "https://user:secret@github.com/x.git"}, 422),
        # The server fetches it: the same outbound rule as project sources.
        ({"repositoryUrl": "http://127.0.0.1:9/x.git"}, 422),
        ({"repositoryUrl": "http://localhost/x.git"}, 422),
        ({"repositoryUrl": "http://169.254.169.254/x.git"}, 422),
        ({"repositoryUrl": "http://[::1]/x.git"}, 422),
        ({"branch": "a..b"}, 422),
        ({"branch": "-x"}, 422),
        ({"branch": "main:refs/x"}, 422),
        ({"branch": ""}, 422),
        ({"repositoryFriendlyUrl": "javascript:alert(1)"}, 422),
        ({"name": ""}, 422),
        ({"name": "!!!"}, 422),
        ({"name": 5}, 422),
        ({"name": "a\x00b"}, 422),
        ({"unknown": 1}, 422),
        ({"name": None}, 422),
    ],
)
def test_bad_registrations(
    library_admin: TestUser, unique: Callable[[str], str], body: dict[str, Any], status: int
) -> None:
    full = {"name": unique("Dålig "), "repositoryUrl": "https://example.org/x.git", **body}
    r = library_admin.client.post(API, json=full)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_library_whose_host_turns_private_is_not_fetched(
    library_admin: TestUser,
    unique: Callable[[str], str],
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registered while its host did not resolve (or resolved publicly), then the
    name points inward: the sync checks again and fetches nothing."""
    server = _Recorder()
    try:
        monkeypatch.setattr(ctx.settings, "source_private_hosts", ["127.0.0.1"])
        r = library_admin.client.post(
            API, json={"name": unique("Inåt "), "repositoryUrl": f"{server.url}/x.git"}
        )
        assert r.status_code == 201, r.text
        library_id = r.json()["id"]
        wait_for(library_admin.client, library_id, "failed")  # fetched: nothing there
        assert server.hits
        server.hits.clear()
        monkeypatch.setattr(ctx.settings, "source_private_hosts", [])
        synced = library_admin.client.post(f"{API}/{library_id}/sync")
        assert synced.status_code == 202, synced.text
        deadline = time.monotonic() + 30
        while "private or local network" not in str(
            (library := library_admin.client.get(f"{API}/{library_id}").json())["syncError"]
        ):
            assert time.monotonic() < deadline, library
            time.sleep(0.05)
        assert library["syncStatus"] == "failed"
        assert server.hits == []
    finally:
        server.close()


class _Recorder:
    """An HTTP server on loopback that records every path asked for."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_error(404)

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = hits
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_malformed_json_is_400(library_admin: TestUser) -> None:
    r = library_admin.client.post(
        API, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_duplicate_names_conflict(
    library_admin: TestUser, scb_library: dict[str, Any], fresh: str
) -> None:
    twin = {
        "name": f"  {scb_library['name'].upper()} ",
        "repositoryUrl": "https://example.org/x.git",
    }
    r = library_admin.client.post(API, json=twin)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    r = library_admin.client.patch(f"{API}/{fresh}", json={"name": scb_library["name"]})
    assert r.status_code == 409


@pytest.mark.parametrize(
    "suffix",
    [
        "",
        "/files",
        f"/files/{README_ID}",
        f"/render/{README_ID}",
        "/readme",
        "/articles",
        "/resources",
        "/templates",
        "/examples",
    ],
)
def test_unknown_library_is_404(alice: TestUser, suffix: str) -> None:
    r = alice.client.get(f"{API}/no-such-library{suffix}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_unknown_library_for_admins(library_admin: TestUser) -> None:
    for method, suffix in (("PATCH", ""), ("DELETE", ""), ("POST", "/sync")):
        body = {"description": "x"} if method == "PATCH" else None
        r = library_admin.client.request(method, f"{API}/no-such-library{suffix}", json=body)
        assert r.status_code == 404, (method, r.text)


# -- permissions ---------------------------------------------------------------------------

# (method, path, body, status for a user, status for an admin); each row gets a fresh library.
ROWS: list[tuple[str, str, Any, int, int]] = [
    ("GET", API, None, 200, 200),
    ("POST", API, {"name": "{name}", "repositoryUrl": "{url}"}, 403, 201),
    ("GET", API + "/{lib}", None, 200, 200),
    ("PATCH", API + "/{lib}", {"description": "d"}, 403, 200),
    ("DELETE", API + "/{lib}", None, 403, 204),
    ("POST", API + "/{lib}/sync", None, 403, 202),
    ("GET", API + "/{lib}/files", None, 200, 200),
    ("GET", API + "/{lib}/files/" + README_ID, None, 200, 200),
    ("GET", API + "/{lib}/render/" + README_ID, None, 200, 200),
    ("GET", API + "/{lib}/readme", None, 200, 200),
    ("GET", API + "/{lib}/articles", None, 200, 200),
    ("GET", API + "/{lib}/resources", None, 200, 200),
    ("GET", API + "/{lib}/templates", None, 200, 200),
    ("GET", API + "/{lib}/examples", None, 200, 200),
]
IDS = [f"{m} {p.removeprefix(API)}" for m, p, *_ in ROWS]


def _call(
    client: httpx.Client, method: str, path: str, body: Any, values: dict[str, str]
) -> httpx.Response:
    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    if isinstance(body, dict):
        body = {k: fill(v) if isinstance(v, str) else v for k, v in body.items()}
    return client.request(method, fill(path), json=body)


@pytest.fixture
def values(fresh: str, source: Path, unique: Callable[[str], str]) -> dict[str, str]:
    return {"lib": fresh, "url": file_url(source), "name": unique("Nytt ")}


@pytest.mark.parametrize(("method", "path", "body", "user", "admin"), ROWS, ids=IDS)
def test_anonymous_is_401(
    anon: httpx.Client,
    values: dict[str, str],
    method: str,
    path: str,
    body: Any,
    user: int,
    admin: int,
) -> None:
    r = _call(anon, method, path, body, values)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "body", "user", "admin"), ROWS, ids=IDS)
def test_users_read_and_admins_manage(
    alice: TestUser,
    library_admin: TestUser,
    values: dict[str, str],
    method: str,
    path: str,
    body: Any,
    user: int,
    admin: int,
) -> None:
    r = _call(alice.client, method, path, body, values)
    assert r.status_code == user, r.text
    r = _call(library_admin.client, method, path, body, values)
    assert r.status_code == admin, r.text


def test_every_library_route_is_in_the_matrix(app: FastAPI) -> None:
    covered = {
        (m, p.replace("{lib}", "{libraryId}").replace(README_ID, "{fileId}")) for m, p, *_ in ROWS
    }
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith(API)}
    assert paths  # every route, however routers are nested
    for path, operations in paths.items():
        for method in operations:
            assert (method.upper(), path) in covered, f"{method} {path} has no row"


def test_public_libraries_open_reading_only(ctx: AppContext, fresh: str) -> None:
    public = derive(ctx, settings=ctx.settings.model_copy(update={"library_public": True}))
    app = create_app(public.settings, ctx=public)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(f"{API}/{fresh}/files/{README_ID}").status_code == 200
        assert client.get(API).status_code == 200
        assert client.post(f"{API}/{fresh}/sync").status_code == 401
        assert client.delete(f"{API}/{fresh}").status_code == 401
        bad = client.get(API, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 200


# -- SCB's library -------------------------------------------------------------------------


def test_scb_files(alice: TestUser, scb_library: dict[str, Any], ctx: AppContext) -> None:
    r = alice.client.get(f"{API}/{scb_library['id']}/files")
    assert r.status_code == 200
    files = {f["path"]: f for f in r.json()}
    on_disk = {
        str(Path(d, n).relative_to(SCB_LIBRARY))
        for d, dirs, names in os.walk(SCB_LIBRARY)
        for n in [*dirs, *names]
    }
    assert set(files) == on_disk
    article = files["Articles/Snabbintroduktion till Balsam.md"]
    assert article["type"] == "File" and article["name"] == "Snabbintroduktion till Balsam.md"
    assert files["Articles/Balsam"]["type"] == "Folder"
    assert files["Articles/Balsam"]["contentUrl"] is None

    content = alice.client.get(local(article["contentUrl"], ctx))
    assert content.status_code == 200
    assert content.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "Bearbetning och Analys i Samverkan" in content.text


def test_pipeline_is_served_as_json(alice: TestUser, scb_library: dict[str, Any]) -> None:
    path = "Resources/Produktionsflöden/produktionsflöde.pipeline"
    r = alice.client.get(f"{API}/{scb_library['id']}/files/{encode_file_id(path)}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json()["doc_type"] == "pipeline"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_swedish_article_renders(alice: TestUser, scb_library: dict[str, Any]) -> None:
    path = "Articles/Balsam/Projekt/Skapa projekt.md"
    r = alice.client.get(f"{API}/{scb_library['id']}/render/{encode_file_id(path)}")
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "markdown" and body["path"] == path
    assert "<h1>" in body["html"] and "projekt" in body["html"].lower()
    intro = alice.client.get(
        f"{API}/{scb_library['id']}/render/"
        f"{encode_file_id('Articles/Snabbintroduktion till Balsam.md')}"
    )
    assert "<h2>Vad är BALSAM</h2>" in intro.json()["html"]
    assert "Bearbetningsmiljöer" in intro.json()["html"]


def test_notebook_renders(alice: TestUser, scb_library: dict[str, Any]) -> None:
    path = "Resources/Datalagring - Minio-s3/Python-S3.ipynb"
    r = alice.client.get(f"{API}/{scb_library['id']}/render/{encode_file_id(path)}")
    body = r.json()
    assert r.status_code == 200 and body["kind"] == "notebook"
    assert "JUPYTERLAB_S3_ENDPOINT" in body["html"] and active_content(body["html"]) == []


def test_scb_readme(alice: TestUser, scb_library: dict[str, Any]) -> None:
    r = alice.client.get(f"{API}/{scb_library['id']}/readme")
    assert r.status_code == 200 and r.json()["path"] == "README.md"
    assert "Kunskapsbibliotek för statistikmyndigheten SCB" in r.json()["html"]


def test_scb_structured_views(alice: TestUser, scb_library: dict[str, Any]) -> None:
    base = f"{API}/{scb_library['id']}"
    assert len(alice.client.get(f"{base}/articles").json()) == 8
    resources = alice.client.get(f"{base}/resources").json()
    assert len(resources["resources"]) == 11 and len(resources["sharedFiles"]) == 1
    templates = alice.client.get(f"{base}/templates").json()
    assert len(templates) == 6 and all(t["error"] is None for t in templates)
    examples = alice.client.get(f"{base}/examples").json()
    assert len(examples["examples"]) == 2
    assert examples["readme"]["path"] == "ExampleProjects/REAME.md"


# -- the adversarial library -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "media", "disposition"),
    [
        ("page.html", "text/plain; charset=utf-8", "inline"),
        ("image.svg", "image/svg+xml", "attachment"),
        ("binary.dat", "application/octet-stream", "attachment"),
        ("code.py", "text/x-python; charset=utf-8", "inline"),
        ("notebook.ipynb", "application/json; charset=utf-8", "inline"),
        ("docs/what?.txt", "text/plain; charset=utf-8", "inline"),
    ],
)
def test_files_are_served_inert(
    alice: TestUser, adversarial_library: dict[str, Any], path: str, media: str, disposition: str
) -> None:
    r = alice.client.get(f"{API}/{adversarial_library['id']}/files/{encode_file_id(path)}")
    assert r.status_code == 200
    assert r.headers["content-type"] == media
    assert r.headers["content-disposition"].startswith(disposition)
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_odd_names_round_trip(
    alice: TestUser, adversarial_library: dict[str, Any], ctx: AppContext
) -> None:
    started = time.perf_counter()
    files = alice.client.get(f"{API}/{adversarial_library['id']}/files").json()
    assert time.perf_counter() - started < 2.0
    by_path = {f["path"]: f for f in files}
    assert {"link-passwd", "link-up", "docs/link-dir", "vendor/submodule"}.isdisjoint(by_path)
    for path in (
        "docs/with space.md",
        "docs/hash#name.md",
        "docs/per%cent.txt",
        "docs/what?.txt",
        "docs/Åäö ü 日本.md",
    ):
        assert by_path[path]["name"] == path.rsplit("/", 1)[-1]
        r = alice.client.get(local(by_path[path]["contentUrl"], ctx))
        assert r.status_code == 200 and r.content == ADVERSARIAL_FILES[path], path


def _id(path: str) -> str:
    return encode_file_id(path)


@pytest.mark.parametrize(
    "file_id",
    [
        _id("link-passwd"),
        _id("link-up"),
        _id("link-up/etc/passwd"),
        _id("docs/link-dir"),
        _id("vendor/submodule"),
        _id("../../../../etc/passwd"),
        _id("/etc/passwd"),
        _id("docs"),
        _id("docs/../evil.md"),
        _id("nope.txt"),
        _id("README.md\x00"),
        base64.b64encode(b"/etc/passwd").decode(),
        "%2e%2e%2fetc%2fpasswd",
        "..%2f..%2fetc",
        "not base64!",
        _id("README.md") + "==",
    ],
)
@pytest.mark.parametrize("view", ["files", "render"])
def test_traversal_links_and_bad_ids_are_404(
    alice: TestUser, adversarial_library: dict[str, Any], file_id: str, view: str
) -> None:
    r = alice.client.get(f"{API}/{adversarial_library['id']}/{view}/{file_id}")
    assert r.status_code == 404, r.text
    assert "root:" not in r.text


def test_large_file_is_streamed(alice: TestUser, adversarial_library: dict[str, Any]) -> None:
    url = f"{API}/{adversarial_library['id']}/files/{_id('big.bin')}"
    with alice.client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(BIG_SIZE)
        assert sum(len(chunk) for chunk in r.iter_bytes()) == BIG_SIZE
    rendered = alice.client.get(f"{API}/{adversarial_library['id']}/render/{_id('big.bin')}")
    assert rendered.json()["kind"] == "binary" and rendered.json()["downloadUrl"]


@pytest.mark.parametrize(
    "path",
    [
        "evil.md",
        "notebook.ipynb",
        "bad.url",
        "page.html",
        "image.svg",
        "Articles/Ond/Artikel.md",
        "README.md",
    ],
)
def test_rendered_html_is_inert(
    alice: TestUser, adversarial_library: dict[str, Any], path: str
) -> None:
    r = alice.client.get(f"{API}/{adversarial_library['id']}/render/{_id(path)}")
    assert r.status_code == 200
    assert active_content(r.json()["html"]) == []


def test_bad_templates_do_not_500(alice: TestUser, adversarial_library: dict[str, Any]) -> None:
    r = alice.client.get(f"{API}/{adversarial_library['id']}/templates")
    assert r.status_code == 200
    errors = {t["path"]: t["error"] for t in r.json()}
    assert errors["Templates/good.json"] is None
    assert all(errors[f"Templates/{n}.json"] for n in ("broken", "array", "types", "latin1"))


# -- lifecycle and contract ---------------------------------------------------------------


def test_lifespan_runs_the_sync_worker(app: FastAPI) -> None:
    before = getattr(app.state, "library_sync", None)
    with TestClient(app):
        worker = app.state.library_sync
        assert worker.running
    assert not worker.running
    assert getattr(app.state, "library_sync", None) is before


UPSTREAM = SHARED / "upstream" / "balsam-api.yaml"


def test_upstream_knowledge_library_operations_are_served(app: FastAPI) -> None:
    upstream = yaml.safe_load(UPSTREAM.read_text(encoding="utf-8"))
    served = app.openapi()
    for path, item in upstream["paths"].items():
        if not path.startswith("/knowledge-libraries"):
            continue
        for method, op in item.items():
            mine = served["paths"][f"/api/v1{path}"][method]
            assert mine["operationId"] == op["operationId"]
            theirs = {(p["name"], p["in"]) for p in op.get("parameters", ())}
            assert theirs <= {(p["name"], p["in"]) for p in mine.get("parameters", ())}
    schema = served["components"]["schemas"]["KnowledgeLibraryPublic"]["properties"]
    wanted = upstream["components"]["schemas"]["KnowledgeLibrary"]["properties"]
    assert set(wanted) <= set(schema)


def test_registry_changes_are_audited(
    ctx: AppContext, library_admin: TestUser, fresh: str, alice: TestUser
) -> None:
    library_admin.client.patch(f"{API}/{fresh}", json={"description": "granskad"})
    library_admin.client.post(f"{API}/{fresh}/sync")
    alice.client.delete(f"{API}/{fresh}")
    events, _ = ctx.audit.page(limit=200)
    mine = [(e.action, e.outcome) for e in events if e.target == f"library:{fresh}"]
    assert ("library.create", "success") in mine and ("library.update", "success") in mine
    assert ("library.sync-request", "success") in mine and ("library.sync", "success") in mine
    denied = [
        e for e in events if e.action == "request.denied" and e.target == f"DELETE {API}/{fresh}"
    ]
    assert denied and denied[0].actor == alice.username


def test_template_json_bodies_are_json(alice: TestUser, scb_library: dict[str, Any]) -> None:
    for template in alice.client.get(f"{API}/{scb_library['id']}/templates").json():
        raw = alice.client.get(f"{API}/{scb_library['id']}/files/{template['id']}")
        assert json.loads(raw.content)["git"] == template["git"]
