"""Result snippets: HTML-safe text around the first match, matches in ``<mark>``.

Everything from the document is escaped; the only markup in a snippet is the
``<mark>`` / ``</mark>`` pairs added here. Matching uses
:func:`balsam.domain.search.text.fold_chars`, so offsets in the folded text
are offsets in the original and ``hamta`` highlights ``Hämta``.
"""

from __future__ import annotations

import html
import re

from balsam.domain.search.index import Query
from balsam.domain.search.text import fold_chars

WIDTH = 180  # characters of text in a snippet
LEAD = 60  # of which before the first match
CHUNK = 2048  # text is folded piecewise while looking for the first match
SEARCH_CHARS = 50_000  # where no match is found this far, the snippet is the text's start
_SPACE = re.compile(r"\s+")


def pattern(query: Query) -> re.Pattern[str]:
    """Whole folded words; the last one also as the start of a word."""
    terms = sorted(set(query.terms), key=len, reverse=True)
    whole = "|".join(re.escape(t) for t in terms)
    last = re.escape(query.terms[-1]) if query.prefix and query.terms else None
    prefix = f"|{last}" if last else ""
    return re.compile(rf"(?<![^\W_])(?:(?:{whole})(?![^\W_]){prefix})")


def snippet(text: str, query: Query) -> str:
    """An HTML snippet of ``text`` for ``query`` (its start when nothing matches)."""
    if not text or not query.terms:
        return html.escape(_SPACE.sub(" ", text[:WIDTH]).strip())
    words = pattern(query)
    start, end = _window(text, _first_match(words, text, max(map(len, query.terms))))
    window = text[start:end]
    parts = ["…"] if start > 0 else []
    done = 0
    for match in words.finditer(fold_chars(window)):
        parts += [
            _plain(window[done : match.start()]),
            "<mark>",
            html.escape(window[match.start() : match.end()]),
            "</mark>",
        ]
        done = match.end()
    parts.append(_plain(window[done:]))
    if end < len(text):
        parts.append("…")
    return "".join(parts).strip()


def _first_match(words: re.Pattern[str], text: str, longest: int) -> int:
    """Offset of the first match in ``text`` (0 when none), folding only as much
    text as needed. A chunk is folded with one character before it (for the
    word-start lookbehind) and ``longest + 1`` after (a match starting in the
    chunk, and the character after it, fit); a match is taken only if it starts
    inside the chunk."""
    for start in range(0, min(len(text), SEARCH_CHARS), CHUNK):
        before = max(0, start - 1)
        folded = fold_chars(text[before : start + CHUNK + longest + 1])
        found = words.search(folded, start - before)
        if found is not None and before + found.start() < start + CHUNK:
            return before + found.start()
    return 0


def _plain(text: str) -> str:
    return html.escape(_SPACE.sub(" ", text))


def _window(text: str, at: int) -> tuple[int, int]:
    """About WIDTH characters around ``at``, cut at spaces where one is near."""
    start = max(0, at - LEAD)
    if start > 0:
        space = text.find(" ", start, at)
        start = space + 1 if space != -1 else start
    end = min(len(text), start + WIDTH)
    if end < len(text):
        space = text.rfind(" ", max(at + 1, end - 30), end)
        end = space if space != -1 else end
    return start, end
