"""Library trees as search reads them, and what changed since the last index.

:class:`TreeReader` is all search needs (``LibraryTree`` of
:mod:`balsam.domain.library.tree` is one). Two optional abilities make a sync
cheaper and are used when a tree has them:

* :class:`BlobIds` — unchanged files (same git blob id) are not read at all;
* :class:`BatchReader` — changed files are read in batches (one git process
  per batch instead of one per file).

:func:`diff` compares a tree with the stored ``path → content hash`` of a
library and extracts documents for new and changed paths only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from balsam.domain.search import documents
from balsam.domain.search.documents import Document
from balsam.errors import BalsamError
from balsam.providers.git.base import TreeEntry

log = logging.getLogger(__name__)

MAX_PATH_CHARS = 1024
BATCH_FILES = 64
BATCH_BYTES = 32 * 1024 * 1024


class TreeReader(Protocol):
    """One commit of a library repository."""

    def entries(self) -> list[TreeEntry]:
        """Every file and folder, recursively."""

    def read(self, path: str) -> bytes:
        """A file's content."""


@runtime_checkable
class BlobIds(Protocol):
    def blob_ids(self) -> Mapping[str, str]:
        """``path → git blob id`` for every file."""


@runtime_checkable
class BatchReader(Protocol):
    def read_many(self, paths: list[str], *, max_bytes: int) -> dict[str, bytes]:
        """Contents of the files among ``paths`` at most ``max_bytes`` long."""


@dataclass
class Changes:
    """New or changed documents, removed paths, and counts for :class:`IndexStats`."""

    put: list[Document] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    added: int = 0
    unchanged: int = 0
    read: int = 0


def indexable(entry: TreeEntry) -> bool:
    """Files only; hidden paths (``.github/``, ``.ipynb_checkpoints/``) are not content."""
    return (
        entry.type == "File"
        and len(entry.path) <= MAX_PATH_CHARS
        and not any(part.startswith(".") for part in entry.path.split("/"))
    )


def diff(library_id: str, tree: TreeReader, known: Mapping[str, str]) -> Changes:
    """What changed between the stored hashes ``known`` and ``tree``."""
    changes = Changes()
    blob_ids = tree.blob_ids() if isinstance(tree, BlobIds) else {}
    to_read: list[TreeEntry] = []
    seen: set[str] = set()
    for entry in filter(indexable, tree.entries()):
        seen.add(entry.path)
        chosen = documents.plan(entry.path, entry.size)
        stored = known.get(entry.path)
        if chosen.extractor is None:
            if stored == documents.content_hash(chosen, None):
                changes.unchanged += 1
            else:
                _put(changes, known, documents.build(library_id, entry.path, chosen, None, None))
        elif (blob := blob_ids.get(entry.path)) is not None and stored == documents.content_hash(
            chosen, blob
        ):
            changes.unchanged += 1
        else:
            to_read.append(entry)
    for entry, data in _contents(tree, to_read):
        changes.read += data is not None
        doc = _document(library_id, entry, data, blob_ids.get(entry.path), known.get(entry.path))
        if doc is None:
            changes.unchanged += 1
        else:
            _put(changes, known, doc)
    changes.removed = sorted(set(known) - seen)
    return changes


def _put(changes: Changes, known: Mapping[str, str], doc: Document) -> None:
    changes.put.append(doc)
    changes.added += doc.path not in known


def _document(
    library_id: str, entry: TreeEntry, data: bytes | None, blob: str | None, stored: str | None
) -> Document | None:
    """The new document, or None when the content is what ``stored`` describes.
    Unreadable files (``data`` None) are indexed by name and retried next time."""
    if data is None:
        chosen = documents.plan(entry.path, entry.size)
        return documents.build(library_id, entry.path, chosen, None, None)
    chosen = documents.plan(entry.path, len(data))
    blob = blob or documents.blob_hash(data)
    if stored == documents.content_hash(chosen, blob):
        return None
    return documents.build(library_id, entry.path, chosen, data, blob)


def _contents(
    tree: TreeReader, entries: list[TreeEntry]
) -> Iterator[tuple[TreeEntry, bytes | None]]:
    if not isinstance(tree, BatchReader):
        for entry in entries:
            yield entry, _read_one(tree, entry)
        return
    for batch in _batches(entries):
        try:
            contents = tree.read_many(
                [e.path for e in batch], max_bytes=documents.NOTEBOOK_MAX_BYTES
            )
        except (BalsamError, OSError) as exc:
            log.warning("search: batch read failed (%s); reading one by one", exc)
            contents = {e.path: data for e in batch if (data := _read_one(tree, e)) is not None}
        for entry in batch:
            yield entry, contents.get(entry.path)


def _read_one(tree: TreeReader, entry: TreeEntry) -> bytes | None:
    try:
        return tree.read(entry.path)
    except (BalsamError, OSError) as exc:
        log.warning("search: cannot read %s: %s", entry.path, exc)
        return None


def _batches(entries: list[TreeEntry]) -> Iterator[list[TreeEntry]]:
    """Groups of at most BATCH_FILES files and (by listed size) about BATCH_BYTES."""
    batch: list[TreeEntry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) >= BATCH_FILES or size + (entry.size or 0) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size or 0
    if batch:
        yield batch
