"""GET /api/v1/search over SCB's real knowledge library."""

from __future__ import annotations

import secrets

import httpx
import pytest

from balsam.context import AppContext
from balsam.domain.search import SearchService
from tests.domain.search.trees import SCB_LIBRARY, DirectoryTree, MemoryTree
from tests.fixtures.app import TestUser

URL = "/api/v1/search"
SKAPA_PROJEKT = "Articles/Balsam/Projekt/Skapa projekt.md"


@pytest.fixture(scope="module")
def scb(ctx: AppContext) -> str:
    """SCB's library, indexed under a library id of this module's own."""
    if not SCB_LIBRARY.is_dir():
        pytest.skip(f"SCB's library is missing: {SCB_LIBRARY}")
    library_id = f"scb-{secrets.token_hex(4)}"
    SearchService(ctx).index_library(library_id, "HEAD", DirectoryTree(SCB_LIBRARY))
    return library_id


def ours(alice: TestUser, scb: str, q: str, **params: str | int) -> list[dict[str, str]]:
    r = alice.client.get(URL, params={"q": q, "limit": 100, **params})
    assert r.status_code == 200, r.text
    return [hit for hit in r.json()["results"] if hit["libraryId"] == scb]


def test_anonymous_is_refused(anon: httpx.Client) -> None:
    r = anon.get(URL, params={"q": "parquet"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "?!"},
        {"q": "x" * 201},
        {"q": "parquet", "limit": "0"},
        {"q": "parquet", "limit": "101"},
        {"q": "parquet", "limit": "many"},
    ],
)
def test_bad_parameters_are_422(alice: TestUser, params: dict[str, str]) -> None:
    r = alice.client.get(URL, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_result_shape(alice: TestUser, scb: str) -> None:
    r = alice.client.get(URL, params={"q": "parquet", "limit": 3})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"results", "total"}
    assert len(body["results"]) == 3 and body["total"] >= 10
    for hit in body["results"]:
        assert set(hit) == {"kind", "libraryId", "path", "title", "snippet"}
        assert hit["kind"] in {
            "article",
            "resource",
            "template",
            "example",
            "notebook",
            "code",
            "file",
        }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("parquet", "Resources/Datalagring - Parquet/README.md"),
        ("hämta", "Resources/Hämta data från internet/README.md"),
        ("hamta", "Resources/Hämta data från internet/README.md"),
        ("HAMTA DATA", "ExampleProjects/Hämta data från dataportal.se/README.md"),
        ("titanic", "Templates/balsam-demo-titanic.json"),
        ("ggplot2", "Resources/Exempelsamling diagramtyper i R/Diagramtyper i R_Heatmap.ipynb"),
        (
            "Imp moms",
            "ExampleProjects/Normalproduktion med standardisering/"
            "R - Månadsproduktion enligt SPS/Imp moms.r",
        ),
        ("cars_test", "Resources/Datalagring - Minio-s3/cars_test.csv"),
    ],
)
def test_scb_library_is_found(alice: TestUser, scb: str, q: str, expected: str) -> None:
    assert expected in [hit["path"] for hit in ours(alice, scb, q)]


def test_diacritics_do_not_matter(alice: TestUser, scb: str) -> None:
    with_marks = [h["path"] for h in ours(alice, scb, "hämta")]
    assert with_marks and with_marks == [h["path"] for h in ours(alice, scb, "hamta")]
    hit = next(h for h in ours(alice, scb, "hamta") if h["kind"] == "resource")
    assert "<mark>hämta</mark>" in hit["snippet"].lower()


def test_article_title_ranks_first(alice: TestUser, scb: str) -> None:
    r = alice.client.get(URL, params={"q": "Skapa projekt"})
    assert r.status_code == 200
    first = r.json()["results"][0]
    assert (first["path"], first["kind"], first["title"]) == (
        SKAPA_PROJEKT,
        "article",
        "Skapa projekt",
    )
    assert first["snippet"].startswith("# <mark>Skapa</mark> <mark>projekt</mark>")


def test_snippets_escape_library_content(alice: TestUser, ctx: AppContext) -> None:
    library_id = f"hostile-{secrets.token_hex(4)}"
    word = f"zx{secrets.token_hex(4)}"
    SearchService(ctx).index_library(
        library_id,
        "c1",
        MemoryTree(
            {
                f"Articles/<img src=x onerror=alert(1)>{word}.md": (
                    f"# <script>alert(1)</script> {word}\n<iframe src=javascript:alert(2)> {word}"
                )
            }
        ),
    )
    try:
        hits = alice.client.get(URL, params={"q": word}).json()["results"]
        assert len(hits) == 1
        assert hits[0]["title"] == f"<script>alert(1)</script> {word}"  # plain text
        assert "<script" not in hits[0]["snippet"] and "<iframe" not in hits[0]["snippet"]
        assert "&lt;iframe src=javascript:alert(2)&gt;" in hits[0]["snippet"]
    finally:
        SearchService(ctx).remove_library(library_id)
