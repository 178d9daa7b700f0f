"""*Kunskapsbibliotek* as pages: SCB's library (articles, resources, templates and
examples), copying a resource into a project, and a hostile library whose
article is full of script."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from balsam.context import AppContext
from balsam.domain.projects.naming import encode_file_id
from tests.fixtures.app import TestUser
from tests.fixtures.library import file_url, make_repo, register_library
from tests.web.pages.browsing import browser, post
from tests.web.test_pages import assert_only_balsams_scripts

RESOURCE = "Resources/Analys - Python"


def test_the_libraries_and_an_article_with_its_links(
    app: FastAPI, alice: TestUser, scb_library: dict[str, Any]
) -> None:
    lid = scb_library["id"]
    with browser(app, alice, "sv") as client:
        cards = client.get("/library")
        assert f'href="/library/{lid}">{scb_library["name"]}</a>' in cards.text
        assert ">Kunskapsbibliotek</a>" in cards.text
        articles = client.get(f"/library/{lid}")
        assert "Skapa projekt" in articles.text and ">Artiklar</a>" in articles.text
        article = re.search(rf'href="(/library/{lid}/file/[^"]+)">Skapa projekt</a>', articles.text)
        assert article is not None
        page = client.get(article.group(1))
    assert page.status_code == 200, page.text
    assert "Tyck på + knappen" in page.text
    assert_only_balsams_scripts(page.text)
    for href in re.findall(r'href="([^"]+)"', page.text.split("<main", 1)[1]):
        assert href.startswith(("/", "#", "http")), href  # Balsam's pages, or the web


def test_a_resource_is_copied_into_a_project_and_a_second_copy_asks_to_overwrite(
    app: FastAPI, alice: TestUser, scb_library: dict[str, Any], unique: Callable[[str], str]
) -> None:
    lid = scb_library["id"]
    created = alice.client.post(
        "/api/v1/projects", json={"name": unique("Resurs "), "branchName": "main"}
    )
    pid = created.json()["id"]
    form = {"target": f"{pid}/main", "resource": encode_file_id(RESOURCE)}
    with browser(app, alice) as client:
        listed = client.get(f"/library/{lid}", params={"tab": "resources"})
        assert "Copy to project" in listed.text and f'value="{pid}/main"' in listed.text
        first = post(client, f"/library/{lid}/copy", form)
        assert first.status_code == 200 and "files copied to" in first.text, first.text
        again = post(client, f"/library/{lid}/copy", form)
        assert again.status_code == 409 and 'name="overwrite"' in again.text
        forced = post(client, f"/library/{lid}/copy", {**form, "overwrite": "1"})
        assert forced.status_code == 200 and "files copied to" in forced.text
    files = alice.client.get(f"/api/v1/projects/{pid}/branches/main/files").json()
    assert any(f["path"].startswith("Resources/Analys - Python/") for f in files)


def test_others_cannot_copy_into_a_project_they_are_not_in(
    app: FastAPI, alice: TestUser, bob: TestUser, scb_library: dict[str, Any],
    unique: Callable[[str], str],
) -> None:  # fmt: skip
    pid = alice.client.post(
        "/api/v1/projects", json={"name": unique("Inte din "), "branchName": "main"}
    ).json()["id"]
    with browser(app, bob) as client:
        r = post(client, f"/library/{scb_library['id']}/copy",
                 {"target": f"{pid}/main", "resource": encode_file_id(RESOURCE)})  # fmt: skip
    assert r.status_code == 404
    files = alice.client.get(f"/api/v1/projects/{pid}/branches/main/files").json()
    assert not any(f["path"].startswith("Resources/") for f in files)


def test_template_and_example_cards_open_nytt_projekt_prefilled(
    app: FastAPI, alice: TestUser, scb_library: dict[str, Any]
) -> None:
    lid = scb_library["id"]
    with browser(app, alice, "sv") as client:
        page = client.get(f"/library/{lid}", params={"tab": "templates"})
        assert ">GIT</a>" in page.text
        links = re.findall(r'href="(/new-project\?source=[^"]+)">Skapa projekt</a>', page.text)
        assert len(links) >= 4
        example = next(link for link in links if "ExampleProjects" in link)
        form = client.get(example.replace("&amp;", "&"))
    assert re.search(r'<option value="[^"]*ExampleProjects/[^"]*" selected>', form.text)


def test_only_admins_sync_a_library(
    app: FastAPI, alice: TestUser, library_admin: TestUser, scb_library: dict[str, Any]
) -> None:
    lid = scb_library["id"]
    with browser(app, alice) as client:
        assert "Sync now" not in client.get(f"/library/{lid}").text
        assert post(client, f"/library/{lid}/sync").status_code == 403


def test_a_hostile_article_renders_inert_and_its_image_is_not_run(
    app: FastAPI,
    ctx: AppContext,
    alice: TestUser,
    library_admin: TestUser,
    sources_root: Path,
    unique: Callable[[str], str],
) -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    )
    article = (b"# Ond\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
               b"[klick](javascript:alert(3)) [annan](Annan.md) ![bild](bild.svg)\n\n"
               b"<a href='data:text/html,<script>alert(4)</script>'>data</a>\n")  # fmt: skip
    source = make_repo(sources_root / unique("hostile"), {
        "Articles/Ond.md": article,
        "Articles/Annan.md": b"# Annan\n",
        "Articles/bild.svg": svg,
        "Templates/t.json": b'{"name": "T", "git": "javascript:alert(document.cookie)"}',
    })  # fmt: skip
    body = {"name": unique("Ondskan "), "repositoryUrl": file_url(source)}
    library = register_library(ctx, library_admin, body)
    lid = library["id"]
    with browser(app, alice) as client:
        page = client.get(f"/library/{lid}/file/{encode_file_id('Articles/Ond.md')}")
        image = client.get(f"/library/{lid}/file/{encode_file_id('Articles/bild.svg')}")
        templates = client.get(f"/library/{lid}", params={"tab": "templates"})
    assert "<h3>T</h3>" in templates.text and 'href="javascript' not in templates.text
    body = page.text.split('<article class="rendered">', 1)[1].split("</article>", 1)[0]
    for bad in ("<script", "onerror", 'href="javascript', "data:text"):
        assert bad not in body, bad
    assert f'href="/library/{lid}/file/{encode_file_id("Articles/Annan.md")}"' in body
    assert f'src="/library/{lid}/file/{encode_file_id("Articles/bild.svg")}"' in body
    assert_only_balsams_scripts(page.text)
    assert image.headers["content-type"] == "image/svg+xml"
    assert "sandbox" in image.headers["content-security-policy"]
    assert "script-src" not in image.headers["content-security-policy"]
