"""Rendering library files to HTML that is safe to put in a page.

Contract: every string this module returns is inert HTML.

* Markdown is rendered by markdown-it-py (CommonMark + tables) and then
  sanitised by nh3 (ammonia): no script, style, iframe, form or event
  handler survives; link and image URLs are http(s) (links also mailto),
  a ``#fragment``, or a path inside the library, which becomes that file's
  ``files/<id>`` URL. Anything else loses its URL.
* Notebooks: markdown cells as above; code cells and outputs are escaped
  (code highlighted by pygments); HTML and JavaScript outputs are never
  shown; PNG/JPEG/GIF outputs become ``data:`` images only after their
  base64 decodes and their bytes are of that type.
* ``.url`` files become a link only when the target is http(s).
* Other text files are highlighted by pygments (which escapes); binary
  files, and files over the size limit, are offered for download only.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import posixpath
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

from balsam.domain.library.catalog import LibraryLinks
from balsam.domain.library.schemas import Rendered
from balsam.domain.library.tree import LibraryTree

LINK_REL = "noopener noreferrer nofollow"
_MARKDOWN = (".md", ".markdown")
_IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
_LEXER_BY_SUFFIX = {".r": "r", ".pipeline": "json", ".ipynb": "json", ".csv": "text"}
_IMAGE_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CLASSED = ("code", "span", "div", "pre")


def render_file(tree: LibraryTree, path: str, links: LibraryLinks, *, max_bytes: int) -> Rendered:
    """Render the file at ``path`` (NotFound unless it is a file of ``tree``)."""
    download = links.content(path)
    lower = path.casefold()
    if tree.size(path) > max_bytes:
        return Rendered(path=path, kind="binary", html="", download_url=download)
    if lower.endswith(_IMAGES):
        alt = html.escape(posixpath.basename(path))
        return Rendered(
            path=path,
            kind="image",
            html=f'<img src="{html.escape(download)}" alt="{alt}">',
            download_url=download,
        )
    text = as_text(tree.read(path))
    if text is None:
        return Rendered(path=path, kind="binary", html="", download_url=download)
    resolve = LinkResolver(tree, posixpath.dirname(path), links)
    if lower.endswith(_MARKDOWN):
        return Rendered(
            path=path, kind="markdown", html=render_markdown(text, resolve), download_url=download
        )
    if lower.endswith(".ipynb"):
        notebook = render_notebook(text, resolve)
        if notebook is not None:
            return Rendered(path=path, kind="notebook", html=notebook, download_url=download)
    if lower.endswith(".url"):
        url = shortcut_target(text)
        return Rendered(path=path, kind="link", html=link_html(url), url=url, download_url=download)
    return Rendered(
        path=path,
        kind="code",
        html=highlight_code(text, lexer_for_file(path)),
        download_url=download,
    )


def as_text(data: bytes) -> str | None:
    """The content as text, or None if it looks binary (NUL bytes, not UTF-8)."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


# -- links ---------------------------------------------------------------------------


class Resolve(Protocol):
    """Turns a URL found in a document into a safe one, or None (drop it)."""

    def __call__(self, value: str, *, image: bool = False) -> str | None: ...


def web_link(value: str, *, image: bool = False) -> str | None:
    """A :class:`Resolve` for documents outside a library: http(s) and mailto
    links and ``#fragments`` are kept; paths and anything else are dropped. Images
    from the web are dropped too: showing a page must not ask another host for
    anything (a tracking pixel, an address that leaks who reads what)."""
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if image:
        return None
    if parts.scheme:
        return value if parts.scheme.lower() in ("http", "https", "mailto") else None
    if value.startswith("#"):
        return value
    return None


class LinkResolver:
    """Turns a URL found in a file under ``base_dir`` into a safe one, or None."""

    def __init__(self, tree: LibraryTree, base_dir: str, links: LibraryLinks) -> None:
        self.tree, self.base_dir, self.links = tree, base_dir, links

    def __call__(self, value: str, *, image: bool = False) -> str | None:
        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError:
            return None
        if parts.scheme or parts.netloc or not parts.path:
            return web_link(value, image=image)  # a web address or a #fragment
        return self._inside(unquote(parts.path), "" if image else parts.fragment)

    def _inside(self, path: str, fragment: str) -> str | None:
        joined = path.lstrip("/") if path.startswith("/") else posixpath.join(self.base_dir, path)
        target = posixpath.normpath(joined)
        if target.startswith("..") or not self.tree.is_file(target):
            return None
        return self.links.content(target) + (f"#{fragment}" if fragment else "")


def _attribute_filter(resolve: Resolve) -> Callable[[str, str, str], str | None]:
    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("href", "src"):
            return resolve(value, image=(tag == "img"))
        if attribute == "cite":
            return None
        if attribute == "class":
            return " ".join(c for c in value.split() if re.fullmatch(r"[\w-]{1,40}", c))
        return value

    return keep


def sanitize(markup: str, resolve: Resolve) -> str:
    """``markup`` with everything active removed and URLs resolved (module docstring)."""
    attributes = {tag: set(nh3.ALLOWED_ATTRIBUTES.get(tag, set())) | {"class"} for tag in _CLASSED}
    return nh3.clean(
        markup,
        attributes={**nh3.ALLOWED_ATTRIBUTES, **attributes},
        url_schemes={"http", "https", "mailto"},
        link_rel=LINK_REL,
        strip_comments=True,
        attribute_filter=_attribute_filter(resolve),
    )


# -- markdown ------------------------------------------------------------------------


def _fence_highlight(code: str, language: str, _attrs: Any) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return str(highlight(code, lexer, HtmlFormatter(nowrap=True)))


def render_markdown(text: str, resolve: Resolve) -> str:
    md = MarkdownIt("commonmark", {"html": True, "highlight": _fence_highlight})
    md.enable(["table", "strikethrough"])
    return sanitize(md.render(text), resolve)


# -- code ----------------------------------------------------------------------------


def lexer_for_file(path: str) -> Lexer:
    suffix = posixpath.splitext(path)[1].casefold()
    try:
        if suffix in _LEXER_BY_SUFFIX:
            return get_lexer_by_name(_LEXER_BY_SUFFIX[suffix])
        return get_lexer_for_filename(posixpath.basename(path))
    except ClassNotFound:
        return TextLexer()


def lexer_for_language(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language.casefold() or "text")
    except ClassNotFound:
        return TextLexer()


def highlight_code(text: str, lexer: Lexer) -> str:
    """Escaped, highlighted HTML (``<div class="highlight"><pre>…``)."""
    return str(highlight(text, lexer, HtmlFormatter(cssclass="highlight")))


# -- .url shortcuts --------------------------------------------------------------------


def shortcut_target(text: str) -> str | None:
    """The ``URL=`` of an ``[InternetShortcut]`` file, if it is http(s)."""
    in_section = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            in_section = line.casefold() == "[internetshortcut]"
        elif in_section and line.casefold().startswith("url="):
            return _web_url(line[4:].strip())
    return None


def _web_url(url: str) -> str | None:
    """``url`` if it is a well-formed http(s) URL with a host, else None."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return None
    return url if ok and not any(c.isspace() or ord(c) < 32 for c in url) else None


def link_html(url: str | None) -> str:
    if url is None:
        return "<p>This shortcut is not shown: only http and https links are allowed.</p>"
    safe = html.escape(url)
    return f'<p><a href="{safe}" rel="{LINK_REL}">{safe}</a></p>'


# -- notebooks -------------------------------------------------------------------------


def render_notebook(text: str, resolve: Resolve) -> str | None:
    """A read-only view of an nbformat-4 notebook; None if it is not one."""
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        return None
    lexer = lexer_for_language(_notebook_language(notebook))
    return "".join(
        _cell(cell, lexer, resolve) for cell in notebook["cells"] if isinstance(cell, dict)
    )


def _notebook_language(notebook: dict[str, Any]) -> str:
    metadata = notebook.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    for key in ("kernelspec", "language_info"):
        info = metadata.get(key)
        name = (
            info.get("language" if key == "kernelspec" else "name")
            if isinstance(info, dict)
            else None
        )
        if isinstance(name, str) and name:
            return name
    return "python"


def _source(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _cell(cell: dict[str, Any], lexer: Lexer, resolve: Resolve) -> str:
    kind, source = cell.get("cell_type"), _source(cell.get("source"))
    if kind == "markdown":
        return f'<div class="cell markdown">{render_markdown(source, resolve)}</div>'
    if kind != "code":
        return f'<div class="cell raw"><pre>{html.escape(source)}</pre></div>'
    outputs = cell.get("outputs")
    rendered = (
        "".join(_output(o) for o in outputs if isinstance(o, dict))
        if isinstance(outputs, list)
        else ""
    )
    return (
        f'<div class="cell code"><div class="input">{highlight_code(source, lexer)}</div>'
        f'<div class="outputs">{rendered}</div></div>'
    )


def _output(output: dict[str, Any]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return f'<pre class="output {name}">{_escaped(_source(output.get("text")))}</pre>'
    if kind == "error":
        trace = "\n".join(t for t in output.get("traceback") or [] if isinstance(t, str))
        return f'<pre class="output error">{_escaped(trace)}</pre>'
    data = output.get("data")
    return _rich_output(data) if isinstance(data, dict) else ""


def _rich_output(data: dict[str, Any]) -> str:
    for media in _IMAGE_MAGIC:
        image = _image(media, _source(data.get(media)))
        if image:
            return image
    if "text/plain" in data:
        return f'<pre class="output result">{_escaped(_source(data["text/plain"]))}</pre>'
    if data:
        return '<p class="output omitted">This output type is not shown here.</p>'
    return ""


def _image(media: str, encoded: str) -> str | None:
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_IMAGE_MAGIC[media]):
        return None
    data = base64.b64encode(raw).decode("ascii")
    return f'<img class="output image" src="data:{media};base64,{data}" alt="output">'


def _escaped(text: str) -> str:
    return html.escape(_ANSI.sub("", text))
