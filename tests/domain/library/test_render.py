"""Rendering: whatever a library holds, the HTML that comes out is inert."""

from __future__ import annotations

from pathlib import Path

import pytest

from balsam.domain.library.catalog import LibraryLinks
from balsam.domain.library.render import (
    LinkResolver,
    render_file,
    render_markdown,
    shortcut_target,
)
from balsam.domain.library.schemas import Rendered
from balsam.domain.library.tree import LibraryTree
from balsam.errors import NotFound
from tests.fixtures.library import ADVERSARIAL_FILES, active_content, git

LINKS = LibraryLinks("http://balsam.test/api/v1/knowledge-libraries/ond")


@pytest.fixture(scope="module")
def adv(adversarial_repo: Path) -> LibraryTree:
    return LibraryTree(adversarial_repo / ".git", git(adversarial_repo, "rev-parse", "HEAD"))


def render(tree: LibraryTree, path: str) -> Rendered:
    out = render_file(tree, path, LINKS, max_bytes=5 * 1024 * 1024)
    assert active_content(out.html) == [], out.html
    return out


@pytest.mark.parametrize("path", [p for p in ADVERSARIAL_FILES if not p.endswith(".dat")])
def test_every_file_renders_inert(adv: LibraryTree, path: str) -> None:
    render(adv, path)


def test_markdown_keeps_content_and_loses_active_parts(adv: LibraryTree) -> None:
    out = render(adv, "evil.md")
    page = out.html

    assert out.kind == "markdown" and out.download_url == LINKS.content("evil.md")
    assert "<h1>Onda saker" in page and "alert" not in page.split("</h1>")[1].split("<p>")[0]
    for gone in (
        "<script",
        "onerror",
        "onload",
        "onclick",
        "<iframe",
        "<style",
        "<form",
        "<svg",
        "<input",
        'href="javascript',
        'href="data',
        'src="data',
        "style=",
    ):
        assert gone not in page.lower(), gone
    assert "passwd" not in page.replace(">passwd link<", "")  # javascript: links stay text
    assert f'<img src="{LINKS.content("pic.png")}"' in page
    assert page.count(f'href="{LINKS.content("docs/with space.md")}"') == 2
    assert f'href="{LINKS.content("docs/Åäö ü 日本.md")}#del-2"' in page
    assert 'href="#onda-saker"' in page
    assert '<a href="https://www.scb.se/" rel="noopener noreferrer nofollow">web</a>' in page
    assert 'href="mailto:info@scb.se"' in page
    assert "https://www.scb.se/logo.png" not in page  # nothing is asked of another host
    assert ">outside</a>" in page and ">passwd link</a>" in page  # text kept, link gone


def test_notebook_is_read_only(adv: LibraryTree) -> None:
    out = render(adv, "notebook.ipynb")
    page = out.html

    assert out.kind == "notebook"
    assert "<h2>Anteckning" in page and "räksmörgås" in page
    assert '<span class="nb">print</span>' in page  # highlighted by pygments
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page  # stream output, escaped
    assert "alert(4)" not in page and "alert(5)" not in page and "alert(6)" not in page
    assert "&lt;plain 42&gt;" in page
    assert page.count('src="data:image/png;base64,') == 1  # the fake PNG is dropped
    assert "alert(7)" not in page
    assert "&lt;script&gt;alert(8)&lt;/script&gt;" in page and "\x1b" not in page
    assert "&lt;script&gt;alert(9)&lt;/script&gt;" in page
    assert f'<img src="{LINKS.content("pic.png")}"' in page


@pytest.mark.parametrize(
    ("path", "url"), [("good.url", "https://www.scb.se/"), ("bad.url", None), ("data.url", None)]
)
def test_url_shortcuts_link_only_to_the_web(adv: LibraryTree, path: str, url: str | None) -> None:
    out = render(adv, path)
    assert out.kind == "link" and out.url == url
    assert ("href" in out.html) == (url is not None)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("page.html", "code"),
        ("code.py", "code"),
        ("flow.pipeline", "code"),
        ("image.svg", "image"),
        ("pic.png", "image"),
        ("binary.dat", "binary"),
        ("big.bin", "binary"),
        ("docs/per%cent.txt", "code"),
    ],
)
def test_kinds(adv: LibraryTree, path: str, kind: str) -> None:
    out = render(adv, path)
    assert out.kind == kind
    assert out.download_url == LINKS.content(path)
    if kind == "binary":
        assert out.html == ""


def test_code_is_escaped(adv: LibraryTree) -> None:
    page = render(adv, "page.html").html
    assert '<span class="nt">script</span>' in page and "<script" not in page
    assert "alert(1)" in render(adv, "code.py").html
    assert '<div class="highlight">' in render(adv, "flow.pipeline").html


def test_links_and_submodules_cannot_be_rendered(adv: LibraryTree) -> None:
    for path in ("link-passwd", "link-up", "vendor/submodule", "../evil.md", "/etc/passwd"):
        with pytest.raises(NotFound):
            render_file(adv, path, LINKS, max_bytes=1024)


@pytest.mark.parametrize(
    ("value", "image", "expected"),
    [
        ("pic.png", True, LINKS.content("pic.png")),
        ("./pic.png", False, LINKS.content("pic.png")),
        ("/pic.png", False, LINKS.content("pic.png")),
        ("docs/../pic.png", False, LINKS.content("pic.png")),
        ("docs/what%3F.txt", False, LINKS.content("docs/what?.txt")),
        ("docs/hash%23name.md#top", False, LINKS.content("docs/hash#name.md") + "#top"),
        ("pic.png#x", True, LINKS.content("pic.png")),
        ("#x", False, "#x"),
        ("#x", True, None),
        ("../pic.png", False, None),
        ("../../etc/passwd", False, None),
        ("link-passwd", False, None),
        ("docs", False, None),
        ("", False, None),
        ("//evil.example/x", False, None),
        ("mailto:a@b.se", True, None),
        ("javascript:alert(1)", False, None),
        ("data:image/png;base64,AA", True, None),
        ("https://scb.se/a", True, None),  # no image from another host
        ("HTTP://scb.se", False, "HTTP://scb.se"),
    ],
)
def test_link_resolver(adv: LibraryTree, value: str, image: bool, expected: str | None) -> None:
    assert LinkResolver(adv, "", LINKS)(value, image=image) == expected


def test_resolution_is_relative_to_the_file(adv: LibraryTree) -> None:
    resolve = LinkResolver(adv, "docs", LINKS)
    assert resolve("with%20space.md") == LINKS.content("docs/with space.md")
    assert resolve("../pic.png") == LINKS.content("pic.png")
    assert resolve("../../pic.png") is None


def test_fenced_code_is_highlighted_and_escaped(adv: LibraryTree) -> None:
    page = render_markdown(
        "```python\nx = '<script>'\n```\n\n```nosuchlang\n<b>\n```\n", LinkResolver(adv, "", LINKS)
    )
    assert '<code class="language-python">' in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;" in page and active_content(page) == []


def test_markdown_tables_render(adv: LibraryTree) -> None:
    page = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n", LinkResolver(adv, "", LINKS))
    assert "<table>" in page and "<td>2</td>" in page


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("[InternetShortcut]\nURL=https://scb.se/a?b=1", "https://scb.se/a?b=1"),
        ("[internetshortcut]\r\nurl=HTTP://scb.se", "HTTP://scb.se"),
        ("[Other]\nURL=https://scb.se", None),
        ("URL=https://scb.se", None),
        ("[InternetShortcut]\nURL=http://[", None),
        ("[InternetShortcut]\nURL=https://", None),
        ("[InternetShortcut]\nURL=file:///etc/passwd", None),
        ("[InternetShortcut]\nURL=https://a b", None),
        ("", None),
    ],
)
def test_shortcut_targets(text: str, url: str | None) -> None:
    assert shortcut_target(text) == url
