"""Folding and tokenising: the one definition of "the same word" for search.

A word is a run of letters and digits (anything else separates words, the
underscore too, so ``read_parquet`` is ``read`` + ``parquet``). Words are
*folded*: NFKD-decomposed, combining marks stripped, casefolded — so
``Hämta``, ``hämta``, ``HAMTA`` and ``hamta`` are one word. Indexing and
querying both go through :func:`words`, so they always agree.

Snippets need positions in the original text, so they use :func:`fold_chars`,
a length-preserving approximation (one folded character per character).
"""

from __future__ import annotations

import functools
import re
import unicodedata

WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=262_144)
def fold_word(raw: str) -> tuple[str, ...]:
    """Fold one raw word; decomposition may split it (``½`` → ``1``, ``2``)."""
    decomposed = unicodedata.normalize("NFKD", raw)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return tuple(WORD.findall(stripped.casefold()))


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order, repeats kept."""
    if text.isascii():
        return WORD.findall(text.lower())
    found: list[str] = []
    for raw in WORD.findall(unicodedata.normalize("NFC", text)):
        if raw.isascii():
            found.append(raw.lower())
        else:
            found.extend(fold_word(raw))
    return found


def fold(text: str) -> str:
    """``text`` as its folded words separated by single spaces."""
    return " ".join(words(text))


class _CharFolds(dict[int, str]):
    """``str.translate`` table, filled on first use of each character: the
    character's folded word when that is one character, else the character."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        folded = "".join(fold_word(char))
        if len(folded) != 1:
            folded = char.lower() if len(char.lower()) == 1 else char
        self[code] = folded
        return folded


_CHAR_FOLDS = _CharFolds()


def fold_chars(text: str) -> str:
    """Fold each character on its own, keeping length and offsets (``ß`` stays)."""
    if text.isascii():
        return text.lower()
    return text.translate(_CHAR_FOLDS)
