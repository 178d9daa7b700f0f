"""What a project can take from the knowledge libraries: where a new project can
start (templates and example projects: *Skapa från Mall eller Exempel*) and the
resources it can copy in (*Lägg till resurs*), from every synced library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from balsam.context import AppContext
from balsam.domain.library import catalog
from balsam.domain.library.service import LibraryService
from balsam.domain.library.tree import LibraryTree

Kind = Literal["template", "example"]


@dataclass(frozen=True)
class StartingPoint:
    """One template or example project, addressed as the API's ``source``."""

    library_id: str
    library_name: str
    path: str
    name: str
    kind: Kind

    @property
    def value(self) -> str:
        """The form value: ``<library id>:<path>`` (ids hold no colon)."""
        return f"{self.library_id}:{self.path}"


def starting_points(ctx: AppContext) -> list[StartingPoint]:
    """Every usable template and example project, library by library (libraries
    not synced yet offer none; a template file that cannot be read is left out)."""
    service = LibraryService(ctx)
    found: list[StartingPoint] = []
    for library in service.list():
        if not library.last_synced_commit:
            continue
        tree = service.tree(library.id)
        found += _of_library(tree, library.id, library.name)
    return found


def _of_library(tree: LibraryTree, library_id: str, library_name: str) -> list[StartingPoint]:
    links = catalog.LibraryLinks("")  # only names and paths are used
    points = [
        StartingPoint(library_id, library_name, t.path, t.name, "template")
        for t in catalog.templates(tree, links)
        if t.error is None
    ]
    root = catalog.top_folder(tree, "ExampleProjects")
    if root is not None:
        points += [
            StartingPoint(library_id, library_name, e.path, e.name, "example")
            for e in tree.children(root)
            if e.type == "Folder"
        ]
    return points


def parse_value(value: str) -> tuple[str, str] | None:
    """``(library id, path)`` of a form value made by :attr:`StartingPoint.value`."""
    library_id, sep, path = value.partition(":")
    return (library_id, path) if sep and library_id and path else None


@dataclass(frozen=True)
class OfferedResource:
    """One resource of a library, as *Lägg till resurs* lists it."""

    library_id: str
    library_name: str
    name: str
    path: str


def every_resource(ctx: AppContext, query: str = "") -> list[OfferedResource]:
    """The resources of every synced library whose name holds ``query`` (any case)."""
    service = LibraryService(ctx)
    wanted = query.casefold()
    found: list[OfferedResource] = []
    for library in service.list():
        if not library.last_synced_commit:
            continue
        tree = service.tree(library.id)
        root = catalog.top_folder(tree, "Resources")
        if root is None:
            continue
        found += [
            OfferedResource(library.id, library.name, entry.name, entry.path)
            for entry in tree.children(root)
            if entry.type == "Folder" and wanted in entry.name.casefold()
        ]
    return found
