"""Keeping library mirrors in sync: fetch, record the outcome, audit, index.

* :class:`LibraryMirror` owns ``<data_dir>/libraries/<id>.git``: a bare
  repository filled by ``git fetch <url> +refs/heads/<branch>:refs/balsam/synced``
  in the clean git environment, with a timeout and fsck of received objects.
  One fetch at a time per library, across threads and processes (a file lock).
* :class:`LibrarySyncer` runs one sync synchronously and records its outcome:
  ``syncing`` → ``ok`` (new ``last_synced_commit``) or ``failed``
  (``sync_error``; the last good commit stays the one served). Every outcome
  is audited; after a success the search index is told about the commit.
* :class:`balsam.domain.library.worker.LibrarySyncWorker` runs syncs in the
  background.
"""

from __future__ import annotations

import fcntl
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from balsam.children import group_dying_with_parent
from balsam.context import AppContext
from balsam.db.models import KnowledgeLibrary, utcnow
from balsam.domain.audit.service import AuditRecord, Outcome
from balsam.domain.library.tree import LibraryTree
from balsam.domain.outbound import NO_REDIRECTS, check_outbound_url
from balsam.errors import N_, InvalidInput, NotFound
from balsam.providers.git.local import git_environment, redact
from balsam.settings import Settings

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:library-sync"
SYNCED_REF = "refs/balsam/synced"
_SCHEMES = frozenset({"http", "https", "file"})
_LIBRARY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")


class SyncFailed(Exception):
    """A fetch failed; the message is safe to show (credentials masked)."""


def library_root(settings: Settings) -> Path:
    return settings.data_dir / "libraries"


def check_repository_url(url: str, file_roots: Sequence[Path]) -> str:
    """The trimmed URL if it is an http(s) URL without credentials, or a
    file:// URL inside one of ``file_roots``; InvalidInput otherwise."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput("repositoryUrl is not a valid URL.") from None
    if (
        parts.scheme not in _SCHEMES
        or not url.lower().startswith(f"{parts.scheme}://")
        or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url)
    ):
        raise InvalidInput(N_("repositoryUrl must be an https://, http:// or file:// git URL."))
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("repositoryUrl must not contain credentials: it is shown to users.")
    if parts.scheme == "file":
        return _check_file_url(url, parts.netloc, unquote(parts.path), file_roots)
    if not parts.hostname:
        raise InvalidInput("repositoryUrl has no host.")
    return url


def check_library_url(url: str, settings: Settings, *, must_resolve: bool) -> str:
    """``check_repository_url``, then, for http(s), the server's outbound rule
    (no private or local addresses unless allowed; see :mod:`balsam.domain.outbound`).
    Registration passes ``must_resolve=False``: the host is checked again, resolved,
    before every fetch."""
    url = check_repository_url(url, settings.source_file_roots)
    if urlsplit(url).scheme != "file":
        check_outbound_url(
            url, settings.source_private_hosts, field="repositoryUrl", must_resolve=must_resolve
        )
    return url


def _check_file_url(url: str, host: str, path: str, roots: Sequence[Path]) -> str:
    resolved = Path(path).resolve()
    allowed = [root.resolve() for root in roots]
    if not host and any(resolved.is_relative_to(r) for r in allowed):
        return url
    raise InvalidInput(
        "file:// libraries are only allowed from the folders an administrator "
        "lists in BALSAM_SOURCE_FILE_ROOTS."
    )


class LibraryMirror:
    """Bare mirrors under ``root``, one ``<library id>.git`` each."""

    def __init__(self, root: Path, *, timeout: float) -> None:
        self.root = Path(root)
        self._timeout = timeout

    def path(self, library_id: str) -> Path:
        """The mirror's folder; NotFound for anything that is not a library id."""
        if not _LIBRARY_ID.match(library_id):
            raise NotFound(f"No knowledge library '{library_id}'.")
        return self.root / f"{library_id}.git"

    @contextmanager
    def locked(self, library_id: str) -> Iterator[None]:
        """Hold the library's lock (blocks while another thread or process holds it)."""
        locks = self.path(library_id).parent / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{library_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def fetch(self, library_id: str, url: str, branch: str) -> str:
        """Fetch ``branch`` of ``url`` (``""``: the remote's HEAD, its default branch)
        into the mirror; return its commit sha. SyncFailed if git fails or times out
        (the mirror keeps what it had)."""
        git_dir = self.path(library_id)
        if not (git_dir / "HEAD").is_file():
            self._init(git_dir)
        self._git(
            [
                "-c",
                "transfer.fsckObjects=true",
                "-c",
                "gc.auto=0",
                *NO_REDIRECTS,
                f"--git-dir={git_dir}",
                "fetch",
                "-q",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                url,
                f"+{f'refs/heads/{branch}' if branch else 'HEAD'}:{SYNCED_REF}",
            ]
        )
        out = self._git(
            [f"--git-dir={git_dir}", "rev-parse", "--verify", "-q", f"{SYNCED_REF}^{{commit}}"]
        )
        return out.decode("ascii").strip()

    def _init(self, git_dir: Path) -> None:
        """Create the bare repository atomically (built aside, renamed into place)."""
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".init-", dir=self.root))
        try:
            self._git(["init", "-q", "--bare", "--template=", str(scratch / "repo.git")])
            shutil.rmtree(git_dir, ignore_errors=True)
            (scratch / "repo.git").rename(git_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def remove(self, library_id: str) -> None:
        """Delete the mirror. Idempotent."""
        shutil.rmtree(self.path(library_id), ignore_errors=True)

    def _git(self, args: list[str]) -> bytes:
        """stdout of ``git args``; SyncFailed on a failure or timeout. git and the
        helpers it starts (``git-remote-http``, blocked on a slow remote) die with
        Balsam: ``subprocess.run`` holds this thread until git has ended."""
        try:
            result = subprocess.run(
                group_dying_with_parent(["git", *args]),
                capture_output=True,
                check=False,
                env=git_environment(),
                timeout=self._timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise SyncFailed(f"git timed out after {self._timeout:g} seconds") from None
        if result.returncode != 0:
            stderr = redact(result.stderr.decode("utf-8", "replace").strip())
            raise SyncFailed(stderr[-1000:] or f"git exited with {result.returncode}")
        return result.stdout


def mirror_for(ctx: AppContext) -> LibraryMirror:
    settings = ctx.settings
    return LibraryMirror(library_root(settings), timeout=settings.library_sync_timeout_seconds)


class LibrarySyncer:
    """Runs one library's sync in the calling thread (see the module docstring)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.mirror = mirror_for(ctx)

    def sync_now(
        self, library_id: str, *, actor: str = SYSTEM_ACTOR, request_id: str = ""
    ) -> KnowledgeLibrary:
        """Fetch the library and record the outcome; return the updated row.
        NotFound if the library does not exist. A failed fetch is not raised:
        it is recorded as ``failed`` with its error."""
        with self.mirror.locked(library_id):
            url, branch, previous = self._begin(library_id)
            try:
                url = check_library_url(url, self.ctx.settings, must_resolve=True)
                commit = self.mirror.fetch(library_id, url, branch)
            except (SyncFailed, InvalidInput) as exc:
                self._finish(library_id, error=str(exc)[:2000])
                self._audit(
                    actor,
                    library_id,
                    "failure",
                    request_id,
                    {"error": str(exc)[:500], "servedCommit": previous},
                )
                return self._get(library_id)
            self._finish(library_id, commit=commit)
            indexed = self._index(library_id, commit)
            self._audit(
                actor,
                library_id,
                "success",
                request_id,
                {"commit": commit, "previousCommit": previous, "indexed": indexed},
            )
            return self._get(library_id)

    def _begin(self, library_id: str) -> tuple[str, str, str | None]:
        """Mark the library ``syncing``; its URL, branch and served commit."""
        with self.ctx.sessions() as session, session.begin():
            library = session.get(KnowledgeLibrary, library_id)
            if library is None:
                raise NotFound(f"No knowledge library '{library_id}'.")
            library.sync_status = "syncing"
            library.last_attempt_at = utcnow()
            return library.repository_url, library.branch, library.last_synced_commit

    def _finish(
        self, library_id: str, *, commit: str | None = None, error: str | None = None
    ) -> None:
        with self.ctx.sessions() as session, session.begin():
            library = session.get(KnowledgeLibrary, library_id)
            if library is None:  # deleted meanwhile
                return
            library.sync_status = "failed" if error is not None else "ok"
            library.sync_error = error
            if commit is not None:
                library.last_synced_commit = commit
                library.last_synced_at = utcnow()

    def _get(self, library_id: str) -> KnowledgeLibrary:
        return load_library(self.ctx, library_id)

    def _index(self, library_id: str, commit: str) -> bool:
        """Hand the synced tree to search; False (logged) when indexing failed
        or search is not installed. Indexing never fails a sync."""
        try:
            from balsam.domain.search.service import SearchService
        except ImportError:
            log.info("search is not available; library %s is not indexed", library_id)
            return False
        tree = LibraryTree(self.mirror.path(library_id), commit)
        try:
            SearchService(self.ctx).index_library(library_id, commit, tree)
        except Exception:
            log.exception("indexing library %s at %s failed", library_id, commit)
            return False
        return True

    def _audit(
        self,
        actor: str,
        library_id: str,
        outcome: Outcome,
        request_id: str,
        details: dict[str, object],
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor,
                action="library.sync",
                target=f"library:{library_id}",
                outcome=outcome,
                request_id=request_id,
                details=details,
            )
        )


def load_library(ctx: AppContext, library_id: str) -> KnowledgeLibrary:
    """The library row; NotFound if there is none."""
    with ctx.sessions() as session:
        library = session.get(KnowledgeLibrary, library_id)
    if library is None:
        raise NotFound(f"No knowledge library '{library_id}'.")
    return library
