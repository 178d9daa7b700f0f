"""Folding and tokenising: one definition of "the same word"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balsam.domain.search.text import fold, fold_chars, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hämta", ["hamta"]),
        ("HÄMTA data", ["hamta", "data"]),
        ("hamta", ["hamta"]),
        ("Åsa Öberg", ["asa", "oberg"]),
        ("Ha\u0308mta", ["hamta"]),  # decomposed input (macOS file names)
        ("Straße", ["strasse"]),
        ("café crème", ["cafe", "creme"]),
        ("ﬁle", ["file"]),  # compatibility ligature
    ],
)
def test_words_fold_case_and_diacritics(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("read_parquet(df)", ["read", "parquet", "df"]),
        ("R-ReadParquet.ipynb", ["r", "readparquet", "ipynb"]),
        (
            "Resources/Datalagring - Parquet/README.md",
            ["resources", "datalagring", "parquet", "readme", "md"],
        ),
        ("2023M06 x=1,5", ["2023m06", "x", "1", "5"]),
        ("", []),
        ("  --  ", []),
    ],
)
def test_words_split_on_everything_but_letters_and_digits(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_fold_joins_words() -> None:
    assert fold("  Skapa   PROJEKT! ") == "skapa projekt"


@given(st.text())
def test_fold_chars_keeps_offsets(text: str) -> None:
    assert len(fold_chars(text)) == len(text)


@given(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1))
def test_fold_chars_agrees_with_words_where_each_character_folds_to_one(text: str) -> None:
    if all(len(fold(c)) == 1 for c in text):
        assert fold_chars(text) == "".join(words(text))


def test_fold_chars_of_swedish() -> None:
    assert fold_chars("Hämta ÅÄÖ data") == "hamta aao data"
