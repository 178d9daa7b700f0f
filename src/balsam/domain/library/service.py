"""Knowledge-library registry: admins register, change and remove libraries;
every logged-in user reads them.

Rules:
* Only administrators create, update, delete or request a sync
  (Forbidden otherwise); every change is audited.
* Ids are slugs of the name (like projects); names are unique regardless of
  case and spacing (Conflict).
* ``repositoryUrl`` is http(s) without credentials, or file:// inside
  ``source_file_roots``; ``repositoryFriendlyUrl`` is http(s); the branch
  follows git's ref rules (InvalidInput otherwise), or is not given (null): then
  the repository's default branch is served, whatever it is called.
* Readers get the last synced commit's tree (:meth:`LibraryService.tree`);
  a library that has never synced has an empty tree.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from balsam.context import AppContext
from balsam.db.models import KnowledgeLibrary
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.library.schemas import LibraryCreate, LibraryUpdate
from balsam.domain.library.sync import (
    LibrarySyncer,
    check_library_url,
    load_library,
    mirror_for,
)
from balsam.domain.library.tree import LibraryTree
from balsam.domain.projects import naming
from balsam.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from balsam.providers.git.local import is_valid_branch_name

LIBRARY_EXISTS = N_("A knowledge library named '%(name)s' already exists.")

log = logging.getLogger(__name__)
MAX_BRANCH = 100
#: Stored for "the repository's default branch" (its HEAD, followed at each sync).
DEFAULT_BRANCH = ""


def library_id_candidates(name: str) -> list[str]:
    """The plain slug of ``name`` first, then the slug with short random suffixes."""
    base = naming.slug_base(name)
    if len(base) < 3:
        base = f"library-{base}".rstrip("-")
    stem = base[: naming.MAX_ID - 5].rstrip("-")
    return [base] + [f"{stem}-{secrets.token_hex(2)}" for _ in range(8)]


def validate_branch(branch: str | None) -> str:
    """A branch name as stored: ``""`` for None (the repository's default branch,
    whatever it is called), else a valid git branch name (InvalidInput otherwise)."""
    if branch is None:
        return DEFAULT_BRANCH
    branch = branch.strip()
    if not branch or len(branch) > MAX_BRANCH or not is_valid_branch_name(branch):
        raise InvalidInput(
            f"branch must be a valid git branch name of at most {MAX_BRANCH} characters."
        )
    return branch


def validate_friendly_url(url: str | None) -> str | None:
    """None for an empty value; the URL if it is http(s); InvalidInput otherwise."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in url)
    ):
        raise InvalidInput("repositoryFriendlyUrl must be an http:// or https:// URL.")
    return url


class LibraryService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.mirror = mirror_for(ctx)

    # -- registry ---------------------------------------------------------------
    def create(self, actor: Actor, data: LibraryCreate) -> KnowledgeLibrary:
        """Register a library (status ``pending``); the caller queues its first sync."""
        self._require_admin(actor)
        name = naming.validate_display_name(data.name)
        library = KnowledgeLibrary(
            name=name,
            name_key=naming.name_key(name),
            description=data.description,
            repository_url=self._check_url(data.repository_url),
            repository_friendly_url=validate_friendly_url(data.repository_friendly_url),
            branch=validate_branch(data.branch),
            sync_status="pending",
            created_by=actor.user_id or None,
        )
        library.id = self._free_id(name, library.name_key)
        try:
            with self.ctx.sessions() as session, session.begin():
                session.add(library)
        except IntegrityError:
            raise Conflict(LIBRARY_EXISTS, params={"name": name}) from None
        self._audit(
            actor,
            "library.create",
            library.id,
            {"name": name, "repositoryUrl": library.repository_url, "branch": library.branch},
        )
        return self.get(library.id)

    def update(
        self, actor: Actor, library_id: str, data: LibraryUpdate
    ) -> tuple[KnowledgeLibrary, bool]:
        """Apply the given fields; ``(library, whether URL or branch changed)``."""
        self._require_admin(actor)
        changes = self._validated_changes(data)
        try:
            with self.ctx.sessions() as session, session.begin():
                library = session.get(KnowledgeLibrary, library_id)
                if library is None:
                    raise NotFound(f"No knowledge library '{library_id}'.")
                changed = {k: v for k, v in changes.items() if getattr(library, k) != v}
                for key, value in changed.items():
                    setattr(library, key, value)
        except IntegrityError:
            raise Conflict(N_("A knowledge library with that name already exists.")) from None
        if changed:
            self._audit(
                actor,
                "library.update",
                library_id,
                {"changed": sorted(k for k in changed if k != "name_key")},
            )
        moved = bool(changed.keys() & {"repository_url", "branch"})
        return self.get(library_id), moved

    def _validated_changes(self, data: LibraryUpdate) -> dict[str, str | None]:
        fields = data.model_fields_set
        changes: dict[str, str | None] = {}
        if "name" in fields and data.name is not None:
            name = naming.validate_display_name(data.name)
            changes.update(name=name, name_key=naming.name_key(name))
        if "description" in fields:
            changes["description"] = data.description or ""
        if "repository_url" in fields:
            changes["repository_url"] = self._check_url(data.repository_url or "")
        if "branch" in fields:
            changes["branch"] = validate_branch(data.branch)
        if "repository_friendly_url" in fields:
            changes["repository_friendly_url"] = validate_friendly_url(data.repository_friendly_url)
        return changes

    def delete(self, actor: Actor, library_id: str) -> None:
        """Remove the library, its mirror and its search index."""
        self._require_admin(actor)
        with self.mirror.locked(library_id):
            with self.ctx.sessions() as session, session.begin():
                library = session.get(KnowledgeLibrary, library_id)
                if library is None:
                    raise NotFound(f"No knowledge library '{library_id}'.")
                session.delete(library)
            self.mirror.remove(library_id)
        self._audit(actor, "library.delete", library_id, {"unindexed": self._unindex(library_id)})

    def request_sync(self, actor: Actor, library_id: str) -> KnowledgeLibrary:
        """Check that a sync may be queued (admin, library exists) and audit it."""
        self._require_admin(actor)
        library = self.get(library_id)
        self._audit(actor, "library.sync-request", library_id, {})
        return library

    def sync(self, library_id: str, *, actor: Actor | None = None) -> KnowledgeLibrary:
        """Sync now, in the calling thread (CLI, tests, the worker)."""
        name = actor.username if actor is not None else "system:library-sync"
        request_id = actor.request_id if actor is not None else ""
        return LibrarySyncer(self.ctx).sync_now(library_id, actor=name, request_id=request_id)

    # -- reading ----------------------------------------------------------------
    def list(self) -> list[KnowledgeLibrary]:
        with self.ctx.sessions() as session:
            return list(
                session.scalars(select(KnowledgeLibrary).order_by(KnowledgeLibrary.name_key))
            )

    def get(self, library_id: str) -> KnowledgeLibrary:
        return load_library(self.ctx, library_id)

    def tree(self, library_id: str) -> LibraryTree:
        """The served content: the last synced commit (empty before the first sync)."""
        library = self.get(library_id)
        return LibraryTree(self.mirror.path(library_id), library.last_synced_commit)

    # -- helpers ----------------------------------------------------------------
    def _check_url(self, url: str) -> str:
        return check_library_url(url, self.ctx.settings, must_resolve=False)

    def _free_id(self, name: str, name_key: str) -> str:
        """An unused id for ``name``; Conflict if the name is taken."""
        with self.ctx.sessions() as session:
            if session.scalar(
                select(KnowledgeLibrary.id).where(KnowledgeLibrary.name_key == name_key)
            ):
                raise Conflict(LIBRARY_EXISTS, params={"name": name})
            for candidate in library_id_candidates(name):
                if session.get(KnowledgeLibrary, candidate) is None:
                    return candidate
        raise Conflict("Could not find a free library id; try another name.")

    def _require_admin(self, actor: Actor) -> None:
        if not actor.is_admin:
            raise Forbidden("Only administrators can manage knowledge libraries.")

    def _unindex(self, library_id: str) -> bool:
        """Drop the library from search; False (logged) if that failed."""
        try:
            from balsam.domain.search.service import SearchService
        except ImportError:
            return False
        try:
            SearchService(self.ctx).remove_library(library_id)
        except Exception:
            log.exception("removing library %s from search failed", library_id)
            return False
        return True

    def _audit(
        self, actor: Actor, action: str, library_id: str, details: dict[str, object]
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"library:{library_id}",
                request_id=actor.request_id,
                details=details,
            )
        )
