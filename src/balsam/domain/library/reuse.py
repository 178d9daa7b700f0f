"""Reusing library content in projects.

* :meth:`ReuseService.copy_to_branch` copies a resource (a folder or one file)
  into a project branch as ONE commit authored by the requesting member.
  Paths under ``Resources/`` keep their library path exactly (upstream
  doubled nested folder names: ``Resources/X/Sub/Sub/file``); anything else
  lands under ``Resources/<its name>``. An existing target is a Conflict
  unless ``overwrite``; a copy that did not happen is never reported.
* :func:`project_source` turns ``source: {libraryId, path}`` of a new project
  into the files (example project folder) or git URL (template) it starts from.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from balsam.context import AppContext
from balsam.db.models import KnowledgeLibrary, User
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.library.catalog import template
from balsam.domain.library.service import LibraryService
from balsam.domain.library.tree import LibraryTree
from balsam.domain.projects.branches import BranchService
from balsam.domain.projects.naming import decode_file_id
from balsam.errors import N_, Conflict, InvalidInput, NotFound, PayloadTooLarge
from balsam.providers.git.base import Author

RESOURCES = "Resources"
#: Largest total size of one copy or one example project (bytes).
MAX_COPY_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class CopyResult:
    commit: str
    library_commit: str
    paths: list[str]


@dataclass(frozen=True)
class ProjectSource:
    """What a new project starts from: files, or a git URL, and a description."""

    files: dict[str, bytes]
    source_url: str | None
    label: str
    #: Recorded as the project's sourceLocation.
    location: str


def target_paths(tree: LibraryTree, path: str) -> dict[str, str]:
    """``library path → project path`` of every file the copy of ``path`` writes."""
    if tree.is_file(path):
        sources = [path]
        base = posixpath.dirname(path)
    elif tree.is_folder(path):
        sources = tree.files_under(path)
        base = posixpath.dirname(path)
    else:
        raise NotFound("No such file or folder in the library.")
    if path == RESOURCES or path.startswith(f"{RESOURCES}/"):
        return {src: src for src in sources}
    return {src: posixpath.join(RESOURCES, posixpath.relpath(src, base or ".")) for src in sources}


def read_files(tree: LibraryTree, mapping: dict[str, str]) -> dict[str, bytes]:
    """The contents keyed by target path; PayloadTooLarge past MAX_COPY_BYTES."""
    total = sum(tree.size(src) for src in mapping)
    if total > MAX_COPY_BYTES:
        raise PayloadTooLarge(
            f"The selection is {total} bytes; at most {MAX_COPY_BYTES} can be copied at once."
        )
    contents = tree.read_many(list(mapping), max_bytes=MAX_COPY_BYTES)
    return {mapping[src]: contents[src] for src in mapping}


class ReuseService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.libraries = LibraryService(ctx)

    def copy_to_branch(
        self,
        actor: Actor,
        project_id: str,
        branch_id: str,
        library_id: str,
        file_id: str,
        *,
        overwrite: bool = False,
    ) -> CopyResult:
        BranchService(self.ctx).get(actor, project_id, branch_id)  # members only
        library = self.libraries.get(library_id)
        tree = self.libraries.tree(library_id)
        path = decode_file_id(file_id)
        mapping = target_paths(tree, path)
        if not mapping:
            raise InvalidInput(f"'{path}' holds no files to copy.")
        self._refuse_existing(project_id, branch_id, set(mapping.values()), overwrite)
        files = read_files(tree, mapping)
        message = (
            f"Copy {path} from knowledge library '{library.name}' ({library.id})\n\n"
            f"Library repository: {library.repository_url}\n"
            f"Library commit: {tree.commit}\n"
        )
        commit = self.ctx.providers.git.commit_files(
            project_id, branch_id, files, message=message, author=self._author(actor)
        )
        self._audit(actor, project_id, branch_id, library, path, tree, commit, len(files))
        return CopyResult(commit=commit, library_commit=tree.commit or "", paths=sorted(files))

    def _refuse_existing(
        self, project_id: str, branch_id: str, targets: set[str], overwrite: bool
    ) -> None:
        if overwrite:
            return
        existing = {e.path for e in self.ctx.providers.git.list_tree(project_id, branch_id)}
        clash = sorted(targets & existing)
        if clash:
            raise Conflict(
                N_("'%(path)s' already exists on this branch; pass overwrite=true to replace it."),
                params={"path": clash[0]},
                details={
                    "errors": [
                        {"loc": ["fileId"], "msg": f"exists: {p}", "type": "exists"}
                        for p in clash[:20]
                    ]
                },
            )

    def _author(self, actor: Actor) -> Author:
        with self.ctx.sessions() as session:
            user = session.get(User, actor.user_id)
        name = (user.display_name if user else "") or actor.username
        email = (user.email if user else "") or f"{actor.username}@balsam.local"
        return Author(name, email)

    def _audit(
        self,
        actor: Actor,
        project_id: str,
        branch_id: str,
        library: KnowledgeLibrary,
        path: str,
        tree: LibraryTree,
        commit: str,
        count: int,
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action="library.copy",
                target=f"project:{project_id}/branch:{branch_id}"[:300],
                project_id=project_id,
                request_id=actor.request_id,
                details={
                    "library": library.id,
                    "path": path,
                    "libraryCommit": tree.commit,
                    "commit": commit,
                    "files": count,
                },
            )
        )


def project_source(ctx: AppContext, library_id: str, path: str) -> ProjectSource:
    """A template JSON (its ``git`` URL) or an example-project folder (its files)."""
    service = LibraryService(ctx)
    library = service.get(library_id)
    tree = service.tree(library_id)
    where = f"'{path}' of knowledge library '{library.name}' at {(tree.commit or '')[:12]}"
    if tree.is_file(path) and path.casefold().endswith(".json"):
        found = template(path, tree.read(path, max_bytes=64 * 1024))
        if found.error or not found.git:
            raise InvalidInput(
                f"The template {path} cannot be used: "
                f"{found.error or 'it names no git repository'}."
            )
        return ProjectSource(
            files={}, source_url=found.git, label=f"template {where}", location=found.git
        )
    if tree.is_folder(path):
        mapping = {src: posixpath.relpath(src, path) for src in tree.files_under(path)}
        if not mapping:
            raise InvalidInput(f"'{path}' holds no files.")
        return ProjectSource(
            files=read_files(tree, mapping),
            source_url=None,
            label=f"example {where}",
            location=f"library:{library.id}/{path}@{tree.commit}",
        )
    raise NotFound(f"No template or example project '{path}' in this library.")
