"""Full-text search over every knowledge library.

The library registry calls :meth:`SearchService.index_library` after each
successful sync and :meth:`SearchService.remove_library` when a library is
removed. Documents live in the ``search_documents`` table; each app context
also holds an in-memory :class:`~balsam.domain.search.index.InvertedIndex`,
built from that table on the first search (or :meth:`SearchService.warm`)
and then kept current by this service. The index state is attached to the
:class:`~balsam.context.AppContext` instance as the attribute ``_search``
(``setattr``: the context is a plain dataclass and search is optional).

Locks: ``writing`` serialises loaders and index updates (so a load never
misses an update), ``reading`` guards the in-memory index and is held only
briefly — searches run while a library is being read and extracted.

Index updates are incremental (:func:`balsam.domain.search.trees.diff`): a
path is re-extracted only when its content hash changed (with a tree that
knows its blob ids, unchanged files are not even read); removed paths are
dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

from sqlalchemy import delete, insert, select

from balsam.context import AppContext
from balsam.db.models import SearchDocument
from balsam.domain.identity.service import Actor
from balsam.domain.search.documents import Document, Kind
from balsam.domain.search.index import InvertedIndex, Prepared, Query, prepare
from balsam.domain.search.schemas import SearchHit, SearchResults
from balsam.domain.search.snippets import snippet
from balsam.domain.search.text import words
from balsam.domain.search.trees import Changes, TreeReader, diff
from balsam.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_QUERY_TERMS = 16
_BATCH = 500
_ATTR = "_search"
_ATTACH = threading.Lock()
T = TypeVar("T")


@dataclass(frozen=True)
class IndexStats:
    library_id: str
    commit: str
    documents: int  # the library's documents after the update
    added: int
    updated: int
    removed: int
    unchanged: int
    read: int  # files whose content was read
    seconds: float


@dataclass
class _State:
    """The in-memory index of one app context, and its locks."""

    index: InvertedIndex = field(default_factory=InvertedIndex)
    loaded: bool = False
    writing: threading.Lock = field(default_factory=threading.Lock)
    reading: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, removed: Iterable[tuple[str, str]], prepared: Iterable[Prepared]) -> None:
        with self.reading:
            for library_id, path in removed:
                self.index.remove(library_id, path)
            for item in prepared:
                self.index.put(item)


def _state(ctx: AppContext) -> _State:
    state: _State | None = getattr(ctx, _ATTR, None)
    if state is None:
        with _ATTACH:
            state = getattr(ctx, _ATTR, None)
            if state is None:
                state = _State()
                setattr(ctx, _ATTR, state)
    return state


def parse_query(q: str) -> Query:
    """Folded, de-duplicated words; InvalidInput when there are none."""
    terms = tuple(dict.fromkeys(words(q)))[:MAX_QUERY_TERMS]
    if not terms:
        raise InvalidInput("The query has no words to search for.")
    return Query(terms=terms)


class SearchService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._state = _state(ctx)

    # -- searching -----------------------------------------------------------------

    def search(self, actor: Actor, q: str, *, limit: int = 20) -> SearchResults:
        """Documents holding every word of ``q``, best first, in libraries ``actor`` reads."""
        query = parse_query(q)
        self.warm()
        allowed = self.readable_libraries(actor)
        with self._state.reading:
            hits, total = self._state.index.search(query, limit=limit, allowed=allowed)
        return SearchResults(
            results=[
                SearchHit(
                    kind=h.entry.kind,
                    library_id=h.entry.library_id,
                    path=h.entry.path,
                    title=h.entry.title,
                    snippet=snippet(h.entry.body, query),
                )
                for h in hits
            ],
            total=total,
        )

    def readable_libraries(self, actor: Actor) -> Callable[[str], bool] | None:
        """Which library ids ``actor`` may read (None: all). Every logged-in user reads
        every library for now; a per-library rule plugs in here."""
        return None

    def warm(self) -> None:
        """Build the in-memory index from the database unless already built."""
        state = self._state
        if state.loaded:
            return
        with state.writing:
            if state.loaded:
                return
            started = time.perf_counter()
            state.apply((), (prepare(d) for d in self._stored_documents()))
            state.loaded = True
            log.info(
                "search index built: %d documents in %.2f s",
                len(state.index),
                time.perf_counter() - started,
            )

    # -- updating ------------------------------------------------------------------

    def index_library(self, library_id: str, commit: str, tree: TreeReader) -> IndexStats:
        """Bring the library's documents up to ``tree`` (its files at ``commit``)."""
        started = time.perf_counter()
        state = self._state
        with state.writing:
            known = self._stored_hashes(library_id)
            changes = diff(library_id, tree, known)
            self._store(library_id, changes)
            if state.loaded:
                state.apply(
                    ((library_id, p) for p in changes.removed), [prepare(d) for d in changes.put]
                )
        return IndexStats(
            library_id=library_id,
            commit=commit,
            documents=len(known) + changes.added - len(changes.removed),
            added=changes.added,
            updated=len(changes.put) - changes.added,
            removed=len(changes.removed),
            unchanged=changes.unchanged,
            read=changes.read,
            seconds=time.perf_counter() - started,
        )

    def remove_library(self, library_id: str) -> None:
        """Drop every document of the library. Idempotent."""
        state = self._state
        with state.writing:
            with self.ctx.sessions() as session, session.begin():
                session.execute(
                    delete(SearchDocument).where(SearchDocument.library_id == library_id)
                )
            if state.loaded:
                with state.reading:
                    state.index.remove_library(library_id)

    # -- the database --------------------------------------------------------------

    def _stored_hashes(self, library_id: str) -> dict[str, str]:
        with self.ctx.sessions() as session:
            rows = session.execute(
                select(SearchDocument.path, SearchDocument.content_hash).where(
                    SearchDocument.library_id == library_id
                )
            )
            return {path: digest for path, digest in rows}

    def _stored_documents(self) -> Iterator[Document]:
        with self.ctx.sessions() as session:
            rows = session.execute(select(SearchDocument).execution_options(yield_per=1000))
            for row in rows.scalars():
                yield Document(
                    library_id=row.library_id,
                    path=row.path,
                    kind=cast(Kind, row.kind),
                    title=row.title,
                    body=row.body,
                    content_hash=row.content_hash,
                )

    def _store(self, library_id: str, changes: Changes) -> None:
        replaced = [d.path for d in changes.put]
        with self.ctx.sessions() as session, session.begin():
            for paths in _batches(changes.removed + replaced):
                session.execute(
                    delete(SearchDocument).where(
                        SearchDocument.library_id == library_id, SearchDocument.path.in_(paths)
                    )
                )
            for docs in _batches(changes.put):
                session.execute(
                    insert(SearchDocument),
                    [
                        {
                            "library_id": d.library_id,
                            "path": d.path,
                            "kind": d.kind,
                            "title": d.title,
                            "body": d.body,
                            "content_hash": d.content_hash,
                        }
                        for d in docs
                    ],
                )


def _batches(items: list[T]) -> Iterator[list[T]]:
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]
