"""Structured views of a library tree, following SCB's format (architecture §5).

* ``Articles/**.md``: articles; title = first ``# `` heading, else the file
  name; category = folder path below ``Articles``.
* ``Resources/<Name>/``: one resource per folder (README + files); files
  directly in ``Resources/`` are library-wide.
* ``Templates/*.json``: ``{name, git, html, description, tags}``; a file that
  cannot be read becomes an entry with ``error`` set (never a failure).
* ``ExampleProjects/<Name>/``: example projects; sub-folders with a README of
  their own are variants. READMEs are found case-insensitively and tolerate
  the ``REAME.md`` misspelling in SCB's library.

Top-level folder names match case-insensitively. Every function is pure: it
reads the tree it is given.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from balsam.domain.library.schemas import (
    Article,
    ExampleCatalog,
    ExampleProject,
    ExampleVariant,
    LibraryFile,
    Resource,
    ResourceCatalog,
    Template,
)
from balsam.domain.library.tree import LibraryTree
from balsam.domain.projects.naming import encode_file_id

README_NAMES = ("readme.md", "readme.markdown", "reame.md", "readme.txt", "readme")
MAX_ARTICLE_BYTES = 512 * 1024
MAX_TEMPLATE_BYTES = 64 * 1024


@dataclass(frozen=True)
class LibraryLinks:
    """Absolute URLs of one library's files: ``<base>/files/<id>`` and
    ``<base>/render/<id>``, ``base`` ending in ``/knowledge-libraries/<id>``."""

    base: str

    def content(self, path: str) -> str:
        return f"{self.base}/files/{encode_file_id(path)}"

    def render(self, path: str) -> str:
        return f"{self.base}/render/{encode_file_id(path)}"

    def file(self, tree: LibraryTree, path: str) -> LibraryFile:
        return LibraryFile(
            id=encode_file_id(path),
            path=path,
            name=posixpath.basename(path),
            size=tree.size(path),
            content_url=self.content(path),
            render_url=self.render(path),
        )


def top_folder(tree: LibraryTree, name: str) -> str | None:
    """The root folder called ``name`` (any case), if there is one."""
    for entry in tree.children(""):
        if entry.type == "Folder" and entry.name.casefold() == name.casefold():
            return entry.path
    return None


def find_readme(tree: LibraryTree, folder: str) -> str | None:
    """Path of ``folder``'s README (``""`` is the root), by :data:`README_NAMES` order."""
    files = {e.name.casefold(): e.path for e in tree.children(folder) if e.type == "File"}
    return next((files[name] for name in README_NAMES if name in files), None)


# -- articles ---------------------------------------------------------------------


def articles(tree: LibraryTree, links: LibraryLinks) -> list[Article]:
    """Every markdown file under Articles/, sorted by category, then title."""
    root = top_folder(tree, "Articles")
    if root is None:
        return []
    paths = [p for p in tree.files_under(root) if p.casefold().endswith((".md", ".markdown"))]
    texts = tree.read_many(paths, max_bytes=MAX_ARTICLE_BYTES)
    found = []
    for path in paths:
        stem = posixpath.splitext(posixpath.basename(path))[0]
        title = heading(texts.get(path, b"").decode("utf-8", "replace")) or stem
        category = posixpath.dirname(path)[len(root) + 1 :]
        found.append(
            Article(
                **links.file(tree, path).model_dump(by_alias=False), title=title, category=category
            )
        )
    return sorted(found, key=lambda a: (a.category.casefold(), a.title.casefold()))


def heading(markdown: str) -> str | None:
    """The text of the first level-1 ATX heading outside code fences."""
    fenced = False
    for line in markdown.lstrip("\ufeff").splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.startswith("# "):
            return line[2:].strip().rstrip("#").strip() or None
    return None


# -- resources ---------------------------------------------------------------------


def resources(tree: LibraryTree, links: LibraryLinks) -> ResourceCatalog:
    root = top_folder(tree, "Resources")
    if root is None:
        return ResourceCatalog(resources=[], shared_files=[])
    found, shared = [], []
    for entry in tree.children(root):
        if entry.type == "File":
            shared.append(links.file(tree, entry.path))
            continue
        readme = find_readme(tree, entry.path)
        found.append(
            Resource(
                name=entry.name,
                path=entry.path,
                readme=links.file(tree, readme) if readme else None,
                files=[links.file(tree, p) for p in tree.files_under(entry.path)],
            )
        )
    return ResourceCatalog(resources=found, shared_files=shared)


# -- templates ---------------------------------------------------------------------


def templates(tree: LibraryTree, links: LibraryLinks) -> list[Template]:
    root = top_folder(tree, "Templates")
    if root is None:
        return []
    paths = [
        e.path
        for e in tree.children(root)
        if e.type == "File" and e.name.casefold().endswith(".json")
    ]
    texts = tree.read_many(paths, max_bytes=MAX_TEMPLATE_BYTES)
    return [template(path, texts.get(path)) for path in paths]


def template(path: str, raw: bytes | None) -> Template:
    """One template file; problems are reported in ``error``, never raised."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    data, problem = _template_data(raw)
    if data is None:
        return Template(id=encode_file_id(path), path=path, name=stem, error=problem)
    return Template(
        id=encode_file_id(path),
        path=path,
        name=data.get("name") or stem,
        git=data.get("git"),
        html=_http_or_none(data.get("html")),
        description=data.get("description") or "",
        tags=data.get("tags") or [],
    )


def _template_data(raw: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed template, or None and why it cannot be used."""
    if raw is None:
        return None, f"The file is larger than {MAX_TEMPLATE_BYTES} bytes."
    try:
        data: Any = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"Not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, "The file must hold a JSON object."
    problem = _template_problem(data)
    return (None, problem) if problem else (data, None)


def _template_problem(data: dict[str, Any]) -> str | None:
    for key in ("name", "git", "html", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"'{key}' must be a string."
    tags = data.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        return "'tags' must be a list of strings."
    return None


def _http_or_none(url: str | None) -> str | None:
    return url if url and url.lower().startswith(("https://", "http://")) else None


# -- example projects --------------------------------------------------------------


def examples(tree: LibraryTree, links: LibraryLinks) -> ExampleCatalog:
    root = top_folder(tree, "ExampleProjects")
    if root is None:
        return ExampleCatalog(readme=None, examples=[])
    readme = find_readme(tree, root)
    found = [
        example(tree, links, entry.path, entry.name)
        for entry in tree.children(root)
        if entry.type == "Folder"
    ]
    return ExampleCatalog(readme=links.file(tree, readme) if readme else None, examples=found)


def example(tree: LibraryTree, links: LibraryLinks, path: str, name: str) -> ExampleProject:
    readme = find_readme(tree, path)
    variants = []
    for entry in tree.children(path):
        variant_readme = find_readme(tree, entry.path) if entry.type == "Folder" else None
        if variant_readme:
            variants.append(
                ExampleVariant(
                    name=entry.name, path=entry.path, readme=links.file(tree, variant_readme)
                )
            )
    return ExampleProject(
        name=name,
        path=path,
        readme=links.file(tree, readme) if readme else None,
        files=[links.file(tree, p) for p in tree.files_under(path)],
        variants=variants,
    )
