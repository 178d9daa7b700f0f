"""SCB's articles *Skapa projekt*, *Ta bort projekt*, *Kunskapsbibliotek* and *Skapa
bearbetningsmiljö*, followed word for word in a real browser (Debian's Chromium through
Playwright) against `balsam up` with SCB's library registered, in Swedish, with the
labels the articles name; every main page in both languages (the English ones carry no
Swedish). No request leaves the machine. Screenshots of the pages go to
``$BALSAM_SCREENSHOTS`` (default: a temporary folder); ``docs/screenshots/`` keeps the
main ones."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from balsam.domain.identity.service import Actor
from balsam.domain.projects.naming import encode_file_id
from tests.cli.test_cli import BalsamUp, serving, up_environment
from tests.fixtures.app import PASSWORD, TestUser
from tests.fixtures.chromium import skip_without_chromium
from tests.fixtures.library import file_url

EXAMPLE = "Normalproduktion med standardisering"
#: Words of the Swedish pages that must not be left on the English ones.
SWEDISH = ("Projekt<", "Mina sidor", "Nytt projekt", "Branchnamn", "Beskrivning", "Inställningar",
           "Ta bort projekt", "Skapa", "Filer", "Medlemmar", "Nycklar", "Logga ut", "Aktivitet",
           "Kunskapsbibliotek", "Mitt konto", "Sök<", "Bearbetningsmiljö")  # fmt: skip

#: Run in a page: every visible text whose colour against its background is below
#: WCAG's 4.5:1 (disabled controls are exempt), as "text: ratio".
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.checkVisibility() || el.closest(":disabled")) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(node.textContent.trim().slice(0, 30) + ": " + ratio.toFixed(2));
  }
  return low;
}"""

#: Run in a page: the visible form controls with no accessible name (no label, no
#: aria-label(ledby), no text), as their outer HTML.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button, summary, a")]
  .filter((el) => el.type !== "hidden" && el.checkVisibility())
  .filter((el) => !((el.labels && el.labels.length) || el.getAttribute("aria-label")
                    || el.getAttribute("aria-labelledby") || el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""

skip_without_chromium()


# -- against `balsam up` (its defaults: workspaces on their own port), with SCB's library --


@pytest.fixture(scope="module")
def installation(
    tmp_path_factory: pytest.TempPathFactory, scb_library_repo: Path
) -> Iterator[BalsamUp]:
    """One `balsam up` for the module, on SQLite (nothing here is about the database),
    that may sync SCB's library from its folder."""
    env = up_environment(f"sqlite:///{tmp_path_factory.mktemp('db') / 'balsam.db'}")
    env["BALSAM_ADMIN_PASSWORD"] = PASSWORD
    env["BALSAM_SOURCE_FILE_ROOTS"] = f'["{scb_library_repo.parent}"]'
    with serving(env, tmp_path_factory.mktemp("portal") / "data") as up:
        yield up


@pytest.fixture(scope="module")
def live_url(installation: BalsamUp) -> str:
    # The portal's own name (under 127.0.0.1 the browser is sent there: that name is
    # the workspaces').
    return installation.url.replace("127.0.0.1", "localhost")


def _token(url: str, username: str) -> str:
    r = httpx.post(f"{url}/api/v1/users/me/tokens", auth=(username, PASSWORD),
                   json={"name": "browser tests"}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _user(url: str, stem: str, *, admin: bool = False) -> TestUser:
    """A user of that installation, made by its administrator through the API."""
    username = f"{stem}{secrets.token_hex(2)}"
    boss = {"Authorization": f"Bearer {_token(url, 'admin')}"}
    made = httpx.post(f"{url}/api/v1/users", headers=boss, timeout=30, json={
        "username": username, "password": PASSWORD, "isAdmin": admin})  # fmt: skip
    assert made.status_code == 201, made.text
    token = _token(url, username)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return TestUser(username, token, Actor(user_id=0, username=username, is_admin=admin), client)


@pytest.fixture(scope="module")
def alice(live_url: str) -> TestUser:
    return _user(live_url, "alice")


@pytest.fixture(scope="module")
def bob(live_url: str) -> TestUser:
    return _user(live_url, "bob")


@pytest.fixture(scope="module")
def admin(live_url: str) -> TestUser:
    return _user(live_url, "chef", admin=True)


@pytest.fixture(scope="module")
def scb_library(admin: TestUser, scb_library_repo: Path) -> dict[str, Any]:
    """SCB's library registered in the portal's installation, and synced."""
    return _registered(admin, {
        "name": "SCB kunskapsbibliotek", "description": "SCB:s bibliotek",
        "repositoryUrl": file_url(scb_library_repo), "branch": "main",
        "repositoryFriendlyUrl": "https://github.com/statisticssweden/balsam-knowledge-library",
    })  # fmt: skip


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BALSAM_SCREENSHOTS", str(tmp_path)))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page(chromium: Browser, live_url: str, locale: str) -> tuple[Page, list[str]]:
    """A new browser page in ``locale``, and the list of every URL it requests
    that is not on Balsam's host."""
    context = chromium.new_context(locale=locale, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    own = urlsplit(live_url).netloc
    elsewhere: list[str] = []
    page.on("request", lambda r: None if urlsplit(r.url).netloc == own or r.url.startswith(
        ("data:", "about:")) else elsewhere.append(r.url))  # fmt: skip
    return page, elsewhere


def _log_in(page: Page, live_url: str, user: TestUser) -> None:
    page.goto(f"{live_url}/login")
    page.locator("#username").fill(user.username)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("main button[type=submit]").click()


def test_skapa_projekt_and_ta_bort_projekt_as_written(
    chromium: Browser,
    live_url: str,
    alice: TestUser,
    scb_library: dict[str, Any],
    unique: Callable[[str], str],
    shots: Path,
) -> None:
    page, elsewhere = _page(chromium, live_url, "sv-SE")
    _log_in(page, live_url, alice)
    name = unique("Skattestatistik ")

    # Skapa projekt: 1. Navigera till Projekt i huvudmenyn
    page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Projekt").click()
    expect(page.get_by_role("heading", name="Projekt", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "projekt-sv.png"))
    # 2. Tryck på + knappen för att skapa ett projekt.
    page.get_by_role("link", name="Nytt projekt").click()
    # 3. Ange namnet på projektet  4. Ange en beskrivning av projektet
    page.get_by_label("Namn", exact=True).fill(name)
    page.get_by_label("Beskrivning", exact=True).fill("Bearbetning av skattedata")
    # 5. ... ange ett nytt namn under *Branchnamn*.
    page.get_by_label("Branchnamn", exact=True).fill("utveckling")
    # 6. ... välj då mallen under *Skapa från Mall eller Exempel*.
    source = page.get_by_label("Skapa från Mall eller Exempel")
    source.select_option(label=f"{scb_library['name']}: {EXAMPLE} (exempel)")
    page.screenshot(path=str(shots / "nytt-projekt-sv.png"))
    page.get_by_role("button", name="Skapa projekt").click()
    expect(page.get_by_role("heading", name="Din nya S3-nyckel")).to_be_visible()
    assert page.locator("#secret-key").inner_text().strip()
    page.get_by_role("link", name="Gå till projektet").click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.get_by_label("Branch", exact=True)).to_have_value("utveckling")
    page.screenshot(path=str(shots / "projektsida-sv.png"), full_page=True)
    project_id = page.url.split("/projects/", 1)[1].split("?", 1)[0]

    # Ta bort projekt: 1. Navigera till Projekt i huvudmenyn
    page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Projekt").click()
    # 2. Välj kugghjulet på projektkortet  3. Välj *Ta bort projekt*
    card = page.locator("li.card", has=page.get_by_role("link", name=name, exact=True))
    card.get_by_label(f"Inställningar för {name}").click()
    card.get_by_role("link", name="Ta bort projekt").click()
    # ... En dialog visas som varnar för att repository och bucket raderas
    dialog = page.get_by_role("dialog", name="Ta bort projekt")
    expect(dialog.get_by_text("raderas", exact=False).first).to_be_visible()
    expect(dialog.get_by_role("textbox")).to_be_focused()  # the keyboard is in the dialog
    # 4. ... mata in namnet på projektet i textrutan och tryck sedan på OK
    ok = dialog.get_by_role("button", name="OK")
    expect(ok).to_be_disabled()
    dialog.get_by_role("textbox").fill(name[:-1])
    expect(ok).to_be_disabled()
    dialog.get_by_role("textbox").fill(name)
    page.screenshot(path=str(shots / "ta-bort-projekt-sv.png"))
    expect(ok).to_be_enabled()
    ok.click()
    expect(page).to_have_url(f"{live_url}/projects?deleted=1")
    expect(page.get_by_role("status")).to_contain_text("Projektet har tagits bort")
    expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    assert alice.client.get(f"/api/v1/projects/{project_id}").status_code == 404
    assert elsewhere == []
    page.context.close()


@pytest.mark.parametrize("locale", ["en-GB", "sv-SE"])
def test_every_main_page_in_both_languages(
    chromium: Browser,
    live_url: str,
    alice: TestUser,
    admin: TestUser,
    unique: Callable[[str], str],
    shots: Path,
    locale: str,
) -> None:
    """Each main page, as a screenshot in each language; the English ones carry no
    Swedish; every one has AA contrast and fits a tablet's width."""
    created = alice.client.post("/api/v1/projects", json={
        "name": unique("Tax statistics "), "description": "", "branchName": "main"})  # fmt: skip
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    lang = locale[:2]
    page, elsewhere = _page(chromium, live_url, locale)
    _log_in(page, live_url, admin)  # an administrator sees every page
    pages = {
        "projects": "/projects",
        "new-project": "/new-project",
        "project": f"/projects/{pid}",
        "project-files": f"/projects/{pid}?tab=files",
        "project-resources": f"/projects/{pid}?tab=resources",
        "project-data": f"/projects/{pid}?tab=data",
        "project-members": f"/projects/{pid}?tab=members",
        "project-keys": f"/projects/{pid}?tab=keys",
        "project-workspaces": f"/projects/{pid}?tab=workspaces",
        "delete-project": f"/projects/{pid}/delete",
        "project-activity": f"/projects/{pid}?tab=activity",
        "library": "/library",
        "account": "/account",
        "search": "/search?q=no-such-word-anywhere",  # the page, not library content
        "my-pages": "/",
        "admin-status": "/admin/status",
        "admin-users": "/admin/users",
        "admin-libraries": "/admin/libraries",
        "admin-templates": "/admin/templates",
        "admin-audit": "/admin/audit",
    }
    for shot, path in pages.items():
        page.goto(f"{live_url}{path}")
        page.screenshot(path=str(shots / f"{shot}-{lang}.png"))
        if lang == "en":
            # The page's own words: not what users and libraries wrote (options, cards,
            # the audit trail's targets).
            main_and_header = re.sub(
                r'<select[^>]*>.*?</select>|<li class="card">.*?</li>|<tbody>.*?</tbody>',
                "", page.content(), flags=re.DOTALL,
            )  # fmt: skip
            left = [word for word in SWEDISH if word in main_and_header]
            assert not left, (path, left)
        assert page.evaluate(LOW_CONTRAST) == [], path  # WCAG AA for text
        assert page.evaluate(UNLABELLED) == [], path  # every control has a name
        # A tablet's width: nothing wider than the window but what scrolls on its own.
        page.set_viewport_size({"width": 800, "height": 900})
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 800, (path, width)
        page.set_viewport_size({"width": 1280, "height": 860})
    assert elsewhere == []
    page.context.close()


def test_kunskapsbibliotek_and_a_workspace_from_the_project_page(
    chromium: Browser,
    live_url: str,
    alice: TestUser,
    scb_library: dict[str, Any],
    unique: Callable[[str], str],
    shots: Path,
) -> None:
    """*Kunskapsbibliotek* as written (read an article, copy a resource, create a
    project from a card), then *Skapa bearbetningsmiljö*, both alternatives."""
    page, elsewhere = _page(chromium, live_url, "sv-SE")
    _log_in(page, live_url, alice)
    name = unique("Från biblioteket ")
    menu = page.get_by_role("navigation", name="Huvudmeny")
    # Navigera till Kunskapsbibliotek i huvudmenyn. Välj sedan det kunskapsbibliotek ...
    menu.get_by_role("link", name="Kunskapsbibliotek").click()
    page.get_by_role("link", name=scb_library["name"]).click()
    page.screenshot(path=str(shots / "kunskapsbibliotek-sv.png"))
    # Artiklar: read one
    page.get_by_role("link", name="Snabbintroduktion till Balsam").first.click()
    expect(page.locator("article.rendered h1")).to_be_visible()
    page.go_back()
    # Mallar och exempel: Skapa Projekt on a card; the dialog comes prefilled
    page.get_by_role("link", name="Mallar och exempel").click()
    page.screenshot(path=str(shots / "mallar-och-exempel-sv.png"))
    card = page.locator("li.card", has_text=EXAMPLE)
    card.get_by_role("link", name="Skapa projekt").click()
    selected = page.get_by_label("Skapa från Mall eller Exempel").locator("option:checked")
    expect(selected).to_contain_text(EXAMPLE)
    page.get_by_label("Namn", exact=True).fill(name)
    page.get_by_role("button", name="Skapa projekt").click()
    page.get_by_role("link", name="Gå till projektet").click()
    # Resurser: Kopiera till projekt
    menu.get_by_role("link", name="Kunskapsbibliotek").click()
    page.get_by_role("link", name=scb_library["name"]).click()
    page.get_by_role("link", name="Resurser").click()
    resource = page.locator("li.card", has_text="Analys - Python")
    resource.get_by_text("Kopiera till projekt").click()
    resource.get_by_label("Projekt och branch").select_option(label=f"{name} / main")
    resource.get_by_role("button", name="Kopiera").click()
    expect(page.get_by_role("status")).to_contain_text("filer kopierade")
    # Skapa bearbetningsmiljö, Alternativ 2: 1. Navigera till Projekt via huvudmenyn
    menu.get_by_role("link", name="Projekt").click()
    # 2. Öppna önskat projekt.  3. Välj eventuellt önskad branch  4. Klicka på + knappen
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_label("Branch", exact=True).select_option("main")
    page.get_by_role("button", name="Visa").click()
    plus = page.get_by_role("link", name=f"Ny bearbetningsmiljö på {name} / main")
    expect(plus).to_have_text("+")
    plus.click()
    page.get_by_label("Namn", exact=True).fill("Min miljö")
    page.get_by_label("Mall").select_option(index=0)
    page.get_by_role("button", name="Skapa", exact=True).click()
    expect(page.get_by_role("cell", name="Min miljö")).to_be_visible()
    page.screenshot(path=str(shots / "bearbetningsmiljoer-sv.png"))
    # Alternativ 1: Mina sidor → the project and branch → Ny bearbetningsmiljö
    menu.get_by_role("link", name="Mina sidor").click()
    branch = page.locator("ul.branches li", has_text=f"{name} / main")
    branch.get_by_text("Ny bearbetningsmiljö").click()
    branch.get_by_label("Namn", exact=True).fill("Andra miljön")
    branch.get_by_label("Mall").select_option(index=0)
    branch.get_by_role("button", name="Skapa", exact=True).click()
    expect(page.get_by_role("link", name="Andra miljön", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "mina-sidor-sv.png"))
    # The state follows without a reload: Öppna appears once it runs.
    page.evaluate("window.notReloaded = true")
    expect(page.get_by_role("link", name="Öppna Andra miljön")).to_be_visible(timeout=180_000)
    row = page.locator("tr", has=page.get_by_role("link", name="Andra miljön", exact=True))
    expect(row).to_contain_text("körs")
    assert page.evaluate("window.notReloaded") is True
    for ws in alice.client.get("/api/v1/workspaces").json():
        if ws["name"] in ("Min miljö", "Andra miljön"):
            alice.client.delete(f"/api/v1/workspaces/{ws['id']}")
    assert elsewhere == []
    page.context.close()


def test_members_keys_and_aktivitet_by_keyboard(
    chromium: Browser,
    live_url: str,
    alice: TestUser,
    bob: TestUser,
    unique: Callable[[str], str],
    shots: Path,
) -> None:
    """An owner adds a member, mints a key and revokes it, and sees each step on
    *Aktivitet*; the revoke's question is a dialog reached and answered by keyboard."""
    name = unique("Nycklar ")
    created = alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    page, elsewhere = _page(chromium, live_url, "sv-SE")
    _log_in(page, live_url, alice)
    page.goto(f"{live_url}/projects/{pid}")
    tabs = page.get_by_role("navigation", name="Projekt")
    tabs.get_by_role("link", name="Medlemmar").click()
    page.get_by_label("Användarnamn").fill(bob.username)
    page.get_by_role("button", name="Lägg till medlem").click()
    expect(page.get_by_role("cell", name=bob.username, exact=True).first).to_be_visible()
    page.screenshot(path=str(shots / "medlemmar-sv.png"), full_page=True)

    tabs.get_by_role("link", name="Nycklar").click()
    page.get_by_label("Namn", exact=True).fill("analys")
    page.get_by_role("button", name="Skapa nyckel").click()
    expect(page.get_by_role("heading", name="Din nya S3-nyckel")).to_be_visible()
    access_key = page.locator("#access-key").inner_text().strip()
    assert page.locator("#secret-key").inner_text().strip()
    page.screenshot(path=str(shots / "nycklar-sv.png"), full_page=True)

    # Revoke by keyboard: the button, Enter; the question comes with the focus on
    # Avbryt; Escape leaves everything as it was, and gives the focus back.
    revoke = page.get_by_role("button", name=f"Återkalla {access_key}")
    revoke.focus()
    page.keyboard.press("Enter")
    question = page.get_by_role("dialog")
    expect(question).to_contain_text(access_key)
    expect(question.get_by_role("button", name="Avbryt")).to_be_focused()
    page.screenshot(path=str(shots / "fraga-sv.png"))
    page.keyboard.press("Escape")
    expect(question).to_be_hidden()
    expect(revoke).to_be_focused()
    keys = alice.client.get(f"/api/v1/projects/{pid}/credentials").json()["credentials"]
    assert access_key in {k["accessKey"] for k in keys}
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")  # from Avbryt back to OK
    expect(question.get_by_role("button", name="OK")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name=f"Återkalla {access_key}")).to_have_count(0)
    keys = alice.client.get(f"/api/v1/projects/{pid}/credentials").json()["credentials"]
    assert access_key not in {k["accessKey"] for k in keys}

    tabs.get_by_role("link", name="Aktivitet").click()
    for label in ("Projekt skapat", "Medlem tillagd", "S3-nyckel skapad", "S3-nyckel återkallad"):
        expect(page.get_by_role("cell", name=label, exact=True).first).to_be_visible()
    page.screenshot(path=str(shots / "aktivitet-sv.png"), full_page=True)
    assert elsewhere == []
    page.context.close()


def _registered(admin: TestUser, body: dict[str, Any]) -> dict[str, Any]:
    """A knowledge library registered in the installation, and synced."""
    made = admin.client.post("/api/v1/knowledge-libraries", json=body)
    assert made.status_code == 201, made.text
    deadline = time.monotonic() + 120
    while (found := admin.client.get(f"/api/v1/knowledge-libraries/{made.json()['id']}").json())[
        "syncStatus"
    ] in ("pending", "syncing"):
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert found["syncStatus"] == "ok", found
    library: dict[str, Any] = found
    return library


def test_an_article_full_of_script_runs_nothing(
    chromium: Browser, live_url: str, admin: TestUser, alice: TestUser, adversarial_repo: Path
) -> None:
    """Scripts, event handlers, javascript:/data: links, SVG, frames and images from
    other hosts, in articles, notebooks and the README: nothing runs, nothing loads."""
    library = _registered(admin, {"name": f"Ond {secrets.token_hex(2)}",
                                  "repositoryUrl": file_url(adversarial_repo)})  # fmt: skip
    page, elsewhere = _page(chromium, live_url, "sv-SE")
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    _log_in(page, live_url, alice)
    base = f"{live_url}/library/{library['id']}"
    pages = [f"{base}?tab=readme", f"{base}?tab=articles"] + [
        f"{base}/file/{encode_file_id(path)}"
        for path in ("evil.md", "notebook.ipynb", "Articles/Ond/Artikel.md")
    ]
    for url in pages:
        page.goto(url)
        hrefs = page.locator("main a").evaluate_all("links => links.map(a => a.href)")
        assert not [h for h in hrefs if h.lower().startswith(("javascript:", "data:", "vbscript:"))]
        active = page.locator("main script, main iframe, main object, main embed, main [onerror], "
                              "main [onload], main [onclick]")  # fmt: skip
        assert active.count() == 0, url
        for link in page.locator("article a[href^='#']").all():
            link.click()  # the harmless ones still work, and still run nothing
    page.wait_for_timeout(500)
    assert alerts == []
    assert elsewhere == []  # not even https://www.scb.se/logo.png
    page.context.close()


def test_others_strangers_and_other_sites_get_nothing_of_a_project(
    chromium: Browser, live_url: str, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    name = unique("Hemligt ")
    created = alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"})
    pid = created.json()["id"]
    paths = [f"/projects/{pid}", f"/projects/{pid}?tab=files", f"/projects/{pid}?tab=members",
             f"/projects/{pid}/delete", f"/projects/{pid}?tab=activity"]  # fmt: skip
    for who in (bob, None):
        page, _ = _page(chromium, live_url, "sv-SE")
        if who is not None:
            _log_in(page, live_url, who)
        for path in paths:
            response = page.goto(f"{live_url}{path}")
            assert response is not None and name not in page.content(), path
            if who is not None:
                assert response.status == 404, path
            else:
                assert urlsplit(page.url).path == "/login", path
        page.context.close()
    # A page on another site posting Ta bort projekt's form, in Alice's browser.
    context = chromium.new_context()
    page = context.new_page()
    _log_in(page, live_url, alice)
    form = (f'<form method="post" action="{live_url}/projects/{pid}/delete">'
            f'<input name="confirm" value="{name}"><input name="csrf" value="guess">'
            '<button>go</button></form>')  # fmt: skip
    page.route(
        "http://elsewhere.test/", lambda route: route.fulfill(body=form, content_type="text/html")
    )
    page.goto("http://elsewhere.test/")
    with page.expect_navigation():
        page.get_by_role("button", name="go").click()
    assert alice.client.get(f"/api/v1/projects/{pid}").status_code == 200
    context.close()
