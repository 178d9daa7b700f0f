"""The *Data* tab in a real browser (Debian's Chromium through Playwright) against the
served app: upload a file of a few MB through the page, watching its progress; see it
listed and previewed; delete it after the confirmation; restore it from its versions.
Every data page has labelled controls and AA contrast; nothing loads from elsewhere."""

from __future__ import annotations

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

#: Three MB or so of CSV: 150,000 rows.
ROWS = 150_000
BODY = ("n,square\n" + "".join(f"{n},{n * n}\n" for n in range(ROWS))).encode()

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


def test_upload_with_progress_preview_delete_and_restore(
    page: Page, live_url: str, alice: TestUser, project: dict[str, Any], shots: Path
) -> None:
    own = urlsplit(live_url).netloc
    elsewhere: list[str] = []
    page.on("request", lambda r: None if urlsplit(r.url).netloc == own or r.url.startswith(
        ("data:", "about:")) else elsewhere.append(r.url))  # fmt: skip
    pid = project["id"]
    page.goto(f"{live_url}/login?next=/projects/{pid}")
    page.locator("#username").fill(alice.username)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("main button[type=submit]").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Data").click()
    upload = page.get_by_role("button", name="Upload", exact=True)
    expect(upload).to_be_visible()  # the script shows the form
    _accessible(page)

    # Upload: a progress bar for the file, then the folder again with the file in it.
    seen: list[tuple[float, float]] = []
    page.expose_function("reportProgress", lambda value, top: seen.append((value, top)))
    page.evaluate(WATCH_PROGRESS)
    page.get_by_label("Files to upload into main/").set_input_files(
        {"name": "squares.csv", "mimeType": "text/csv", "buffer": BODY}
    )
    with page.expect_navigation():
        upload.click()
    expect(page.get_by_role("status")).to_have_text("Uploaded.")
    assert seen and seen[-1] == (len(BODY), len(BODY)), seen[-3:]
    row = page.locator("tr", has=page.get_by_role("link", name="squares.csv", exact=True))
    expect(row).to_contain_text("MB")
    expect(row).to_contain_text(alice.username)
    page.screenshot(path=str(shots / "project-data-en.png"), full_page=True)
    assert alice.client.get(f"/api/v1/projects/{pid}/data/main/squares.csv").content == BODY

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

    # Delete: the confirmation page first.
    page.go_back()
    page.get_by_role("link", name="Delete squares.csv").click()
    expect(page.get_by_role("heading", name="Delete the file squares.csv")).to_be_visible()
    _accessible(page)
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Deleted.")
    expect(page.get_by_role("link", name="squares.csv", exact=True)).to_have_count(0)
    assert alice.client.get(f"/api/v1/projects/{pid}/data/main/squares.csv").status_code == 404

    # Restore: from its versions, after the question.
    page.get_by_role("link", name="Versions of squares.csv").click()
    expect(page.get_by_text("This file is deleted.")).to_be_visible()
    page.get_by_role("button", name="Restore the version of").first.click()
    page.get_by_role("dialog").get_by_role("button", name="OK").click()
    expect(page.get_by_role("status")).to_contain_text("restored")
    expect(page.locator("table.preview th").first).to_have_text("n")
    assert alice.client.get(f"/api/v1/projects/{pid}/data/main/squares.csv").content == BODY

    page.goto(f"{live_url}/projects/{pid}/data/usage?branch=main")
    expect(page.get_by_role("row", name="main/")).to_contain_text("MB")
    _accessible(page)
    assert elsewhere == []
