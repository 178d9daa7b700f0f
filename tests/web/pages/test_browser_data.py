"""The *Data* tab in a real browser (Debian's Chromium through Playwright) against the
served app: upload a file of a few hundred MB through the page (a resumable upload in
parts), watching its progress; see it listed and previewed; restore it after it was
overwritten; delete it after the confirmation; see the usage against the quota. Every
data page has labelled controls and AA contrast; nothing loads from elsewhere."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.app import PASSWORD, TestUser
from tests.fixtures.chromium import skip_without_chromium
from tests.web.pages.test_browser_projects import LOW_CONTRAST, UNLABELLED

skip_without_chromium()

#: The head of the CSV: 150,000 rows of squares (~3 MB), then filler rows up to ~200 MB.
ROWS = 150_000
HEAD = ("n,square\n" + "".join(f"{n},{n * n}\n" for n in range(ROWS))).encode()
SIZE = 200 * 1024 * 1024


def _csv(path: Path) -> str:
    """Write the CSV to ``path``; its SHA-256."""
    digest = hashlib.sha256()
    filler = ("".join(f"{n},0\n" for n in range(ROWS, ROWS + 100_000))).encode()
    with path.open("wb") as out:
        out.write(HEAD)
        digest.update(HEAD)
        written = len(HEAD)
        while written < SIZE:
            out.write(filler)
            digest.update(filler)
            written += len(filler)
    return digest.hexdigest()


def _sha256(answer: Any) -> str:
    return hashlib.sha256(answer.content).hexdigest()


#: Run in the page before the upload: every change of the upload list's text (the
#: percentages, then "Uploaded") reports each progress bar's value and maximum.
WATCH_PROGRESS = """() => {
  const list = document.getElementById("upload-list");
  new MutationObserver(() => {
    for (const bar of list.querySelectorAll("progress")) window.reportProgress(bar.value, bar.max);
  }).observe(list, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BALSAM_SCREENSHOTS", str(tmp_path)))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(chromium: Browser, tmp_path: Path) -> Iterator[Page]:
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    yield opened
    opened.screenshot(path=str(tmp_path / "last.png"))
    context.close()


def _accessible(page: Page) -> None:
    """AA contrast, a name for every control, and a tablet's width: nothing wider than
    the window but what scrolls on its own."""
    assert page.evaluate(LOW_CONTRAST) == [], page.url
    assert page.evaluate(UNLABELLED) == [], page.url
    page.set_viewport_size({"width": 800, "height": 900})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 860})
    assert width <= 800, (page.url, width)


def _data_tab(page: Page, live_url: str, user: TestUser, project_id: str) -> None:
    """Sign in as ``user`` and open the project's Data tab."""
    page.goto(f"{live_url}/login?next=/projects/{project_id}")
    page.locator("#username").fill(user.username)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("main button[type=submit]").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Data").click()


def test_upload_with_progress_preview_restore_delete_and_quota(
    page: Page,
    live_url: str,
    alice: TestUser,
    admin: TestUser,
    project: dict[str, Any],
    shots: Path,
    tmp_path: Path,
) -> None:
    own = urlsplit(live_url).netloc
    elsewhere: list[str] = []
    page.on("request", lambda r: None if urlsplit(r.url).netloc == own or r.url.startswith(
        ("data:", "about:")) else elsewhere.append(r.url))  # fmt: skip
    parts: list[str] = []
    page.on("request", lambda r: parts.append(r.url) if "/parts/" in r.url else None)
    pid = project["id"]
    _data_tab(page, live_url, alice, pid)
    upload = page.get_by_role("button", name="Upload", exact=True)
    expect(upload).to_be_visible()  # the script shows the form
    _accessible(page)

    # Upload: a progress bar for the file, then the folder again with the file in it.
    seen: list[tuple[float, float]] = []
    page.expose_function("reportProgress", lambda value, top: seen.append((value, top)))
    page.evaluate(WATCH_PROGRESS)
    source = tmp_path / "squares.csv"
    expected = _csv(source)
    size = source.stat().st_size
    page.get_by_label("Files to upload into main/").set_input_files(str(source))
    with page.expect_navigation(timeout=300_000):
        upload.click()
    expect(page.get_by_role("status")).to_have_text("Uploaded.")
    # Progress reported along the way (a part at a time), ending at the whole file.
    assert len({value for value, _ in seen}) > 10 and seen[-1] == (size, size), seen[-3:]
    assert len(parts) == -(-size // (8 * 1024 * 1024)), len(parts)  # one request a part
    row = page.locator("tr", has=page.get_by_role("link", name="squares.csv", exact=True))
    expect(row).to_contain_text("MB")
    expect(row).to_contain_text(alice.username)
    page.screenshot(path=str(shots / "project-data-en.png"), full_page=True)
    url = f"/api/v1/projects/{pid}/data/main/squares.csv"
    assert _sha256(alice.client.get(url)) == expected

    # Preview: the columns and the first rows.
    row.get_by_role("link", name="squares.csv", exact=True).click()
    expect(page.get_by_role("heading", name="squares.csv")).to_be_visible()
    expect(page.locator("table.preview th").nth(1)).to_have_text("square")
    expect(page.locator("table.preview tbody tr").nth(3)).to_contain_text("9")
    page.screenshot(path=str(shots / "project-data-file-en.png"))
    expect(page.get_by_role("link", name="Download", exact=True)).to_have_attribute(
        "href", f"/api/v1/projects/{pid}/data/main/squares.csv"
    )
    _accessible(page)

    # Overwritten by mistake: the earlier version is restored from the file's versions.
    assert alice.client.put(url, content=b"oops\n").status_code == 201
    page.reload()
    page.get_by_role("button", name="Restore the version of").first.click()
    page.get_by_role("dialog").get_by_role("button", name="OK").click()
    expect(page.get_by_role("status")).to_contain_text("restored")
    expect(page.locator("table.preview th").first).to_have_text("n")
    assert _sha256(alice.client.get(url)) == expected

    # Usage against the quota an administrator set.
    quota = admin.client.patch(f"/api/v1/projects/{pid}", json={"storageQuotaBytes": 10**9})
    assert quota.status_code == 200, quota.text
    page.goto(f"{live_url}/projects/{pid}/data/usage?branch=main")
    expect(page.get_by_role("row", name="main/")).to_contain_text("MB")
    expect(page.get_by_text("used of the project's quota of")).to_be_visible()
    assert page.locator("meter#quota").get_attribute("max") == str(10**9)
    _accessible(page)

    # Delete: the confirmation page first; then it can still be restored.
    page.goto(f"{live_url}/projects/{pid}")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Data").click()
    page.get_by_role("link", name="Delete squares.csv").click()
    expect(page.get_by_role("heading", name="Delete the file squares.csv")).to_be_visible()
    _accessible(page)
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Deleted.")
    expect(page.get_by_role("link", name="squares.csv", exact=True)).to_have_count(0)
    assert alice.client.get(url).status_code == 404
    page.get_by_role("link", name="Versions of squares.csv").click()
    expect(page.get_by_text("This file is deleted.")).to_be_visible()

    assert elsewhere == []


def test_a_part_whose_connection_drops_is_sent_again(
    page: Page, live_url: str, alice: TestUser, project: dict[str, Any], tmp_path: Path
) -> None:
    """The page's upload survives a dropped connection: the part is sent again."""
    pid = project["id"]
    source = tmp_path / "bitar.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))
    dropped: list[str] = []

    def drop_once(route: Any) -> None:
        if not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/parts/2", drop_once)
    _data_tab(page, live_url, alice, pid)
    page.get_by_label("Files to upload into main/").set_input_files(str(source))
    with page.expect_navigation(timeout=120_000):
        page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Uploaded.")
    assert dropped
    got = alice.client.get(f"/api/v1/projects/{pid}/data/main/bitar.bin")
    assert got.content == source.read_bytes()
