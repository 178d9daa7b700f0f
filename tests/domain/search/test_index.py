"""The inverted index on its own: matching, ranking, updates, compaction."""

from __future__ import annotations

from balsam.domain.search.documents import Document, Kind
from balsam.domain.search.index import Hit, InvertedIndex, Query, prepare
from balsam.domain.search.service import parse_query


def doc(
    path: str, title: str = "", body: str = "", library: str = "lib", kind: Kind = "article"
) -> Document:
    return Document(
        library_id=library, path=path, kind=kind, title=title or path, body=body, content_hash="x"
    )


def build(*docs: Document) -> InvertedIndex:
    index = InvertedIndex()
    for d in docs:
        index.put(prepare(d))
    return index


def find(index: InvertedIndex, q: str, limit: int = 20) -> list[str]:
    return [h.entry.path for h in search(index, q, limit)[0]]


def search(index: InvertedIndex, q: str, limit: int = 20) -> tuple[list[Hit], int]:
    return index.search(parse_query(q), limit=limit)


def test_every_word_must_match() -> None:
    index = build(
        doc("a.md", body="skapa projekt"),
        doc("b.md", body="skapa miljö"),
        doc("c.md", body="projekt"),
    )
    assert sorted(find(index, "skapa projekt")) == ["a.md"]
    assert sorted(find(index, "skapa")) == ["a.md", "b.md"]
    assert find(index, "skapa okänt") == []


def test_diacritics_and_case_are_ignored_both_ways() -> None:
    index = build(doc("a.md", body="Hämta data"), doc("b.md", body="HAMTA data"))
    assert sorted(find(index, "hamta")) == ["a.md", "b.md"]
    assert sorted(find(index, "HÄMTA")) == ["a.md", "b.md"]


def test_last_word_matches_as_prefix_only() -> None:
    index = build(doc("a.md", body="parquetfiler läses"), doc("b.md", body="par"))
    assert find(index, "parq") == ["a.md"]
    assert find(index, "parq läses") == []  # only the last word is a prefix
    assert find(index, "läses parq") == ["a.md"]


def test_exact_word_outranks_a_completion() -> None:
    index = build(doc("long.md", body="parquetfiler"), doc("exact.md", body="parquet"))
    assert find(index, "parquet") == ["exact.md", "long.md"]


def test_title_then_path_then_body() -> None:
    index = build(
        doc("Articles/x/body.md", title="Annat", body="minio minio minio minio"),
        doc("Resources/Minio/README.md", title="Lagring", body="text"),
        doc("Articles/title.md", title="Om Minio och S3", body="text"),
        doc("Articles/exact.md", title="Minio", body="text"),
    )
    hits, total = search(index, "minio")
    assert [h.entry.path for h in hits] == [
        "Articles/exact.md",
        "Articles/title.md",
        "Resources/Minio/README.md",
        "Articles/x/body.md",
    ]
    assert [h.group for h in hits] == [0, 1, 2, 3]
    assert total == 4


def test_all_words_must_be_in_the_title_for_the_title_group() -> None:
    index = build(
        doc("a.md", title="Skapa", body="projekt " * 50),
        doc("b.md", title="Skapa projekt i Balsam", body="x"),
    )
    hits, _ = search(index, "skapa projekt")
    assert [(h.entry.path, h.group) for h in hits] == [("b.md", 1), ("a.md", 3)]


def test_rarer_words_weigh_more_within_a_group() -> None:
    common = [doc(f"c{i}.md", body="data") for i in range(20)]
    index = build(
        *common,
        doc("rare-twice.md", body="imputering imputering data"),
        doc("common-twice.md", body="data data imputering"),
    )
    assert find(index, "data imputering") == ["rare-twice.md", "common-twice.md"]


def test_limit_and_total() -> None:
    index = build(*[doc(f"d{i}.md", body="ord") for i in range(30)])
    hits, total = search(index, "ord", limit=5)
    assert len(hits) == 5 and total == 30


def test_put_replaces_and_remove_drops() -> None:
    index = build(doc("a.md", body="gammal"))
    index.put(prepare(doc("a.md", body="ny")))
    assert find(index, "gammal") == [] and find(index, "ny") == ["a.md"]
    index.remove("lib", "a.md")
    assert find(index, "ny") == [] and len(index) == 0
    index.remove("lib", "a.md")  # idempotent


def test_libraries_are_separate() -> None:
    index = build(doc("a.md", body="ord", library="one"), doc("a.md", body="ord", library="two"))
    assert len(search(index, "ord")[0]) == 2
    index.remove_library("one")
    assert [h.entry.library_id for h in search(index, "ord")[0]] == ["two"]


def test_allowed_filters_libraries() -> None:
    index = build(doc("a.md", body="ord", library="one"), doc("b.md", body="ord", library="two"))
    hits, total = index.search(
        Query(terms=("ord",)), limit=10, allowed=lambda library: library == "two"
    )
    assert [h.entry.path for h in hits] == ["b.md"] and total == 1


def test_compaction_keeps_results() -> None:
    index = InvertedIndex()
    for round_ in range(6):
        for i in range(400):
            index.put(prepare(doc(f"d{i}.md", body=f"ord runda{round_} nr{i}")))
    assert len(index) == 400
    assert len(index._docs) < 6 * 400  # compacted at least once
    assert len(find(index, "ord", limit=1000)) == 400
    assert find(index, "runda0") == [] and len(find(index, "runda5", limit=1000)) == 400
    assert find(index, "nr17")[0] == "d17.md"  # then nr170…nr179
    index.compact()
    assert len(index._docs) == 400 and find(index, "nr399") == ["d399.md"]


def test_many_candidates_use_binary_search_path() -> None:
    docs = [doc(f"d{i}.md", body="vanlig") for i in range(200)]
    index = build(*docs, doc("x.md", body="vanlig ovanlig"))
    assert find(index, "ovanlig vanlig") == ["x.md"]
    assert find(index, "vanlig ovanlig") == ["x.md"]


def test_short_last_words_are_not_completed() -> None:
    index = build(doc("a.md", body="x xylofon"))
    assert find(index, "x") == ["a.md"]
    assert find(index, "xy") == ["a.md"]
    assert find(index, "q") == []
