"""The in-memory inverted index: folded word → postings with field weights.

Layout: every document gets a number (its slot in ``_docs``). A word's
postings are two parallel arrays in document-number order — ``codes``
(``number << 3 | fields``, fields a bitmask of TITLE / PATH / BODY) and
``weights`` (the document's BM25 term-frequency part, per field times the
field's weight, summed). About 12 bytes a posting, no Python object each.

Replacing or removing a document only empties its slot; searches skip empty
slots and :meth:`InvertedIndex.compact` drops them once they are a quarter
of all slots. BM25 normally divides by the *average* field length; here each
field has a fixed typical length, so a posting's weight never changes after
it is written. idf comes from the posting list's length at query time (dead
postings count until the next compaction — a small, temporary skew).

Ranking: documents matching every query word in the title come first (an
exact title before the rest), then those matching every word in the title or
path, then the rest; by score within each group.

Not thread-safe: :class:`balsam.domain.search.service.SearchService` holds a
lock around every call.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from balsam.domain.search.documents import Document, Kind
from balsam.domain.search.text import words

TITLE, PATH, BODY = 1, 2, 4
#: (field, weight, typical length in words)
FIELDS = ((TITLE, 3.0, 4.0), (PATH, 1.5, 8.0), (BODY, 1.0, 400.0))
K1, B = 1.2, 0.75
PREFIX_WEIGHT = 0.5  # a completion of the last word counts half an exact match
MIN_PREFIX = 2
MAX_COMPLETIONS = 64
COMPACT_MIN_DEAD = 1024
#: fields bitmask → group flags: bit 0 "in the title", bit 1 "in the title or path"
_FLAGS = tuple((m & TITLE) | (2 if m & (TITLE | PATH) else 0) for m in range(8))


@dataclass(frozen=True, slots=True)
class Query:
    """Folded words, all required; the last one also matches as a prefix."""

    terms: tuple[str, ...]
    prefix: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    """A document as the index keeps it (immutable: safe to read outside the lock)."""

    library_id: str
    path: str
    kind: Kind
    title: str
    body: str
    title_words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document tokenised and weighted, ready for :meth:`InvertedIndex.put`."""

    entry: Entry
    postings: dict[str, tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    score: float
    group: int  # 0 exact title, 1 all words in title, 2 in title or path, 3 anywhere


class _Postings:
    __slots__ = ("codes", "weights")

    def __init__(self) -> None:
        self.codes = array("q")
        self.weights = array("f")


def prepare(doc: Document) -> Prepared:
    """Tokenise and weigh a document (pure; done outside the index lock)."""
    found: dict[str, tuple[int, float]] = {}
    for (field, weight, typical), text in zip(FIELDS, (doc.title, doc.path, doc.body), strict=True):
        tokens = words(text)
        norm = K1 * (1 - B + B * len(tokens) / typical)
        for term, tf in Counter(tokens).items():
            fields, total = found.get(term, (0, 0.0))
            found[term] = (fields | field, total + weight * tf * (K1 + 1) / (tf + norm))
    entry = Entry(
        library_id=doc.library_id,
        path=doc.path,
        kind=doc.kind,
        title=doc.title,
        body=doc.body,
        title_words=tuple(words(doc.title)),
    )
    return Prepared(entry=entry, postings=found)


class InvertedIndex:
    def __init__(self) -> None:
        self._docs: list[Entry | None] = []
        self._libraries: dict[str, dict[str, int]] = {}
        self._postings: dict[str, _Postings] = {}
        self._live = 0
        self._vocabulary: list[str] | None = None

    def __len__(self) -> int:
        return self._live

    @property
    def terms(self) -> int:
        return len(self._postings)

    def put(self, prepared: Prepared) -> None:
        """Add a document, replacing the one at the same library and path."""
        entry = prepared.entry
        self.remove(entry.library_id, entry.path)
        number = len(self._docs)
        self._docs.append(entry)
        self._libraries.setdefault(entry.library_id, {})[entry.path] = number
        self._live += 1
        for term, (fields, weight) in prepared.postings.items():
            postings = self._postings.get(term)
            if postings is None:
                postings = self._postings[term] = _Postings()
                self._vocabulary = None
            postings.codes.append(number << 3 | fields)
            postings.weights.append(weight)

    def remove(self, library_id: str, path: str, *, compact: bool = True) -> None:
        number = self._libraries.get(library_id, {}).pop(path, None)
        if number is not None:
            self._docs[number] = None
            self._live -= 1
        if compact:
            self.compact_if_sparse()

    def remove_library(self, library_id: str) -> None:
        for number in self._libraries.pop(library_id, {}).values():
            self._docs[number] = None
            self._live -= 1
        self.compact_if_sparse()

    def compact_if_sparse(self) -> None:
        dead = len(self._docs) - self._live
        if dead >= COMPACT_MIN_DEAD and dead * 4 >= len(self._docs):
            self.compact()

    def compact(self) -> None:
        """Drop empty slots and their postings, renumbering the documents."""
        renumber: dict[int, int] = {}
        docs: list[Entry | None] = []
        for old, entry in enumerate(self._docs):
            if entry is not None:
                renumber[old] = len(docs)
                docs.append(entry)
        for term in list(self._postings):
            old_postings, new = self._postings[term], _Postings()
            for code, weight in zip(old_postings.codes, old_postings.weights, strict=True):
                number = renumber.get(code >> 3)
                if number is not None:
                    new.codes.append(number << 3 | code & 7)
                    new.weights.append(weight)
            if new.codes:
                self._postings[term] = new
            else:
                del self._postings[term]
        self._docs = docs
        for paths in self._libraries.values():
            for path, old in paths.items():
                paths[path] = renumber[old]
        self._vocabulary = None

    # -- searching ---------------------------------------------------------------

    def search(
        self, query: Query, *, limit: int, allowed: Callable[[str], bool] | None = None
    ) -> tuple[list[Hit], int]:
        """The best ``limit`` hits and the number of documents matching at all."""
        last = len(query.terms) - 1
        expansions = [
            self._expand(t, query.prefix and i == last) for i, t in enumerate(query.terms)
        ]
        if not expansions or not all(expansions):
            return [], 0
        expansions.sort(key=lambda e: sum(len(p.codes) for p, _ in e))
        matched = self._scan(expansions[0], None)
        for expansion in expansions[1:]:
            if not matched:
                break
            more = self._scan(expansion, matched)
            matched = {
                d: (s + more[d][0], f & more[d][1]) for d, (s, f) in matched.items() if d in more
            }
        return self._rank(query, matched, limit, allowed)

    def _rank(
        self,
        query: Query,
        matched: dict[int, tuple[float, int]],
        limit: int,
        allowed: Callable[[str], bool] | None,
    ) -> tuple[list[Hit], int]:
        docs = self._docs
        if allowed is not None:
            matched = {
                d: m
                for d, m in matched.items()
                if (e := docs[d]) is not None and allowed(e.library_id)
            }
        ranked: list[tuple[int, float, int]] = []
        for number, (score, flags) in matched.items():
            if flags & 1:
                entry = docs[number]
                group = 0 if entry is not None and _same_words(entry.title_words, query) else 1
            else:
                group = 2 if flags & 2 else 3
            ranked.append((group, -score, number))
        best = heapq.nsmallest(limit, ranked)
        hits = [
            Hit(entry=e, score=-score, group=group)
            for group, score, number in best
            if (e := docs[number]) is not None
        ]
        return hits, len(ranked)

    def _scan(
        self, expansion: list[tuple[_Postings, float]], within: dict[int, tuple[float, int]] | None
    ) -> dict[int, tuple[float, int]]:
        """Documents holding any of the expansion's words: (score, group flags)."""
        if len(expansion) == 1:  # the common case, in one pass
            postings, factor = expansion[0]
            idf = self._idf(len(postings.codes)) * factor
            return {
                number: (idf * weight, _FLAGS[code & 7])
                for number, code, weight in self._postings_of(postings, within)
            }
        scores: dict[int, float] = {}
        masks: dict[int, int] = {}
        for postings, factor in expansion:
            idf = self._idf(len(postings.codes)) * factor
            for number, code, weight in self._postings_of(postings, within):
                if number in scores:
                    scores[number] += idf * weight
                    masks[number] |= code & 7
                else:
                    scores[number] = idf * weight
                    masks[number] = code & 7
        return {d: (s, _FLAGS[masks[d]]) for d, s in scores.items()}

    def _postings_of(
        self, postings: _Postings, within: dict[int, tuple[float, int]] | None
    ) -> Iterator[tuple[int, int, float]]:
        """``(number, code, weight)`` of live documents (of ``within`` when given)."""
        codes, weights = postings.codes, postings.weights
        if within is not None and len(within) * 16 < len(codes):
            for number in within:  # few candidates, long list: binary search
                i = bisect_left(codes, number << 3)
                if i < len(codes) and codes[i] >> 3 == number:
                    yield number, codes[i], weights[i]
            return
        docs = self._docs
        for code, weight in zip(codes, weights, strict=True):
            number = code >> 3
            if (docs[number] is not None) if within is None else (number in within):
                yield number, code, weight

    def _idf(self, df: int) -> float:
        n = max(self._live, 1)
        df = min(df, n)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _expand(self, term: str, prefix: bool) -> list[tuple[_Postings, float]]:
        """The word's postings, plus (when ``prefix``) its most common completions."""
        found = [(p, 1.0)] if (p := self._postings.get(term)) is not None else []
        if prefix and len(term) >= MIN_PREFIX:
            completions = [self._postings[t] for t in self._completions(term)]
            completions.sort(key=lambda p: len(p.codes), reverse=True)
            found += [(p, PREFIX_WEIGHT) for p in completions[:MAX_COMPLETIONS]]
        return found

    def _completions(self, prefix: str) -> list[str]:
        if self._vocabulary is None:
            self._vocabulary = sorted(self._postings)
        vocabulary = self._vocabulary
        found = []
        i = bisect_left(vocabulary, prefix)
        while i < len(vocabulary) and vocabulary[i].startswith(prefix):
            if vocabulary[i] != prefix:
                found.append(vocabulary[i])
            i += 1
        return found


def _same_words(title: tuple[str, ...], query: Query) -> bool:
    """The title is exactly the query (its last word may be completed)."""
    if len(title) != len(query.terms) or not title:
        return False
    if query.prefix:
        return title[:-1] == query.terms[:-1] and title[-1].startswith(query.terms[-1])
    return title == query.terms
