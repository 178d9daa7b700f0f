"""Snippets are HTML-safe; only <mark> is markup."""

from __future__ import annotations

import html
import re

from balsam.domain.search.index import Query
from balsam.domain.search.service import parse_query
from balsam.domain.search.snippets import CHUNK, WIDTH, snippet


def test_hostile_text_is_escaped() -> None:
    text = '<script>alert("x")</script> & <img src=x onerror=alert(1)> parquet'
    out = snippet(text, parse_query("parquet"))
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and "&amp;" in out
    assert out.endswith("<mark>parquet</mark>")
    assert re.sub(r"</?mark>", "", out) == html.escape(text)


def test_hostile_match_itself_is_escaped() -> None:
    out = snippet("x <b>script</b> y", parse_query("<script>"))
    assert out == "x &lt;b&gt;<mark>script</mark>&lt;/b&gt; y"


def test_every_occurrence_in_the_window_is_marked_with_original_spelling() -> None:
    out = snippet("Hämta data. Sedan HAMTA mer data.", parse_query("hamta"))
    assert out == "<mark>Hämta</mark> data. Sedan <mark>HAMTA</mark> mer data."


def test_whole_words_except_the_last_query_word() -> None:
    assert (
        snippet("skapat skapa projektet", parse_query("skapa proj"))
        == "skapat <mark>skapa</mark> <mark>proj</mark>ektet"
    )
    assert snippet("underskapa", parse_query("skapa")) == "underskapa"


def test_underscore_separates_words() -> None:
    assert (
        snippet("pd.read_parquet(x)", parse_query("parquet")) == "pd.read_<mark>parquet</mark>(x)"
    )


def test_window_around_first_match_with_ellipses() -> None:
    text = ("inledning " * 100) + "målet nås " + ("avslutning " * 100)
    out = snippet(text, parse_query("malet"))
    assert out.startswith("…") and out.endswith("…")
    assert "<mark>målet</mark>" in out
    assert len(re.sub(r"</?mark>", "", out)) <= WIDTH + 2


def test_whitespace_is_collapsed() -> None:
    assert snippet("a\n\n\tb  ord", parse_query("ord")) == "a b <mark>ord</mark>"


def test_no_match_in_text_gives_its_start() -> None:
    out = snippet("<p>" + "text " * 100, parse_query("titel"))
    assert out.startswith("&lt;p&gt;text") and out.endswith("…")
    assert snippet("", parse_query("titel")) == ""


def test_matches_across_fold_chunks_are_found_exactly() -> None:
    for offset in range(CHUNK - 12, CHUNK + 3):
        text = "x" * (offset - 1) + " database data"
        out = snippet(text, Query(terms=("data",), prefix=False))
        assert out.endswith("database <mark>data</mark>"), offset
        out = snippet(text, parse_query("datab"))
        assert "<mark>datab</mark>ase" in out, offset


def test_a_match_far_into_a_long_text_is_found() -> None:
    text = "ord " * 5000 + "Hämta"
    assert snippet(text, parse_query("hamta")).endswith("<mark>Hämta</mark>")
