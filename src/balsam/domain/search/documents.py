"""What a library file becomes in the index: its kind, title and text.

The library format (architecture §5, the library's own README.md) decides the
kind from the path alone; the size decides whether the content is read at all
(big files are found by name only). Every extractor tolerates broken input —
invalid UTF-8, broken JSON, binary data — and falls back to the file name.

A document's *content hash* is ``<extractor version>:<git blob id>`` (or
``<version>:name`` where only the name is indexed), so a git reader can skip
unchanged files without reading them, and a new extractor version re-indexes
everything once.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["article", "resource", "template", "example", "notebook", "code", "file"]

EXTRACTOR_VERSION = "1"
MAX_BODY_CHARS = 100_000
MAX_TITLE_CHARS = 300
CODE_MAX_BYTES = 256 * 1024
TEXT_MAX_BYTES = 1024 * 1024
NOTEBOOK_MAX_BYTES = 16 * 1024 * 1024
CODE_SUFFIXES = frozenset({".py", ".r", ".sql"})
TEXT_SUFFIXES = frozenset({".md", ".txt", ".url"})

#: ``(path, content) -> (title or "", body)``
Extractor = Callable[[str, str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Document:
    """One indexed file of one library."""

    library_id: str
    path: str
    kind: Kind
    title: str
    body: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class Plan:
    """How a path is indexed: its kind, and how to read it (None: by name only)."""

    kind: Kind
    extractor: Extractor | None
    max_bytes: int = 0


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def suffix(path: str) -> str:
    name = file_name(path)
    return name[name.rfind(".") :].lower() if "." in name else ""


def kind_of(path: str) -> Kind:
    """The document kind the library format gives ``path``."""
    parts = path.split("/")
    top, name, ext = parts[0], parts[-1].lower(), suffix(path)
    if ext == ".ipynb":
        return "notebook"
    if ext in CODE_SUFFIXES:
        return "code"
    if top == "Templates" and len(parts) == 2 and ext == ".json":
        return "template"
    if top == "Articles" and ext == ".md":
        return "article"
    if top == "Resources" and (len(parts) == 2 or (len(parts) == 3 and name == "readme.md")):
        return "resource"
    if top == "ExampleProjects" and len(parts) >= 3 and name == "readme.md":
        return "example"
    return "file"


def plan(path: str, size: int | None) -> Plan:
    """Decide, from the path and size, what is read and how."""
    kind, ext = kind_of(path), suffix(path)
    if kind == "notebook":
        chosen = Plan(kind, extract_notebook, NOTEBOOK_MAX_BYTES)
    elif kind == "code":
        chosen = Plan(kind, extract_plain, CODE_MAX_BYTES)
    elif kind == "template":
        chosen = Plan(kind, extract_template, TEXT_MAX_BYTES)
    elif ext == ".md":
        chosen = Plan(kind, extract_markdown, TEXT_MAX_BYTES)
    elif ext in TEXT_SUFFIXES:
        chosen = Plan(kind, extract_plain, TEXT_MAX_BYTES)
    else:
        return Plan(kind, None)
    if size is not None and size > chosen.max_bytes:
        return Plan(kind, None)
    return chosen


def blob_hash(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def content_hash(chosen: Plan, blob_id: str | None) -> str:
    if chosen.extractor is None or blob_id is None:
        return f"{EXTRACTOR_VERSION}:name"
    return f"{EXTRACTOR_VERSION}:{blob_id}"


def build(
    library_id: str, path: str, chosen: Plan, data: bytes | None, blob_id: str | None
) -> Document:
    """The document for ``path``; ``data`` (and its ``blob_id``) is None when the
    plan is by name only or the file could not be read."""
    title, body = "", ""
    if (
        chosen.extractor is not None
        and data is not None
        and len(data) <= chosen.max_bytes
        and b"\x00" not in data[:8192]
    ):
        title, body = chosen.extractor(path, decode(data))
    return Document(
        library_id=library_id,
        path=path,
        kind=chosen.kind,
        title=clean(title or default_title(path))[:MAX_TITLE_CHARS].strip(),
        body=clean(body)[:MAX_BODY_CHARS],
        content_hash=content_hash(chosen, blob_id if data is not None else None),
    )


def default_title(path: str) -> str:
    """The file name; for a README its folder's name (a resource is named by its folder)."""
    parts = path.split("/")
    if len(parts) > 1 and parts[-1].lower() == "readme.md":
        return parts[-2]
    return parts[-1]


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def clean(text: str) -> str:
    """NFC (so snippets line up with folded words) and no NUL (PostgreSQL refuses it)."""
    return unicodedata.normalize("NFC", text.replace("\x00", ""))


def first_heading(markdown: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip().rstrip("#").strip()
    return ""


def extract_markdown(path: str, text: str) -> tuple[str, str]:
    return first_heading(text), text


def extract_plain(path: str, text: str) -> tuple[str, str]:
    return "", text


def extract_template(path: str, text: str) -> tuple[str, str]:
    """``{name, git, html, description, tags}``; broken JSON is indexed as text."""
    try:
        data = json.loads(text)
    except ValueError:
        return "", text
    if not isinstance(data, dict):
        return "", text
    name = data.get("name")
    tags = data.get("tags")
    parts = [
        str(data.get("description") or ""),
        " ".join(str(t) for t in tags) if isinstance(tags, list) else "",
        str(data.get("html") or data.get("git") or ""),
    ]
    return (name if isinstance(name, str) else ""), "\n".join(p for p in parts if p)


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", cell.get("input", ""))
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _cells(notebook: Any) -> list[dict[str, Any]]:
    if not isinstance(notebook, dict):
        return []
    cells = notebook.get("cells")
    if cells is None:  # nbformat 3
        cells = [
            c
            for ws in notebook.get("worksheets", [])
            if isinstance(ws, dict)
            for c in ws.get("cells", [])
        ]
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def extract_notebook(path: str, text: str) -> tuple[str, str]:
    """Markdown and code cells (outputs are left out); title from the first ``# ``."""
    try:
        cells = _cells(json.loads(text))
    except ValueError:
        return "", ""
    texts = [_source(c) for c in cells if c.get("cell_type") in ("markdown", "code")]
    markdown = [_source(c) for c in cells if c.get("cell_type") == "markdown"]
    title = next((h for h in map(first_heading, markdown) if h), "")
    return title, "\n\n".join(t for t in texts if t.strip())
