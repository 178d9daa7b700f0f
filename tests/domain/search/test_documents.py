"""Library files → documents: kinds, titles and text (architecture §5)."""

from __future__ import annotations

import json

import pytest

from balsam.domain.search.documents import (
    CODE_MAX_BYTES,
    MAX_BODY_CHARS,
    Document,
    blob_hash,
    build,
    kind_of,
    plan,
)


def doc_of(path: str, content: bytes | str) -> Document:
    data = content.encode() if isinstance(content, str) else content
    chosen = plan(path, len(data))
    return build("lib", path, chosen, data if chosen.extractor else None, blob_hash(data))


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("Articles/Snabbintroduktion till Balsam.md", "article"),
        ("Articles/Balsam/Projekt/Skapa projekt.md", "article"),
        ("Resources/Datalagring - Parquet/README.md", "resource"),
        ("Resources/README.md", "resource"),
        ("Resources/scb-verksamhetsstod.url", "resource"),
        ("Resources/Datalagring - Parquet/P-ReadParquet.ipynb", "notebook"),
        ("Resources/Kodning/etl.py", "code"),
        ("ExampleProjects/X/Läs indata.r", "code"),
        ("ExampleProjects/X/query.SQL", "code"),
        ("Templates/balsam-demo-titanic.json", "template"),
        ("Templates/nested/x.json", "file"),
        ("ExampleProjects/Hämta data/README.md", "example"),
        ("ExampleProjects/X/Y/README.md", "example"),
        ("ExampleProjects/REAME.md", "file"),
        ("README.md", "file"),
        ("Resources/Datalagring - Minio-s3/cars_test.csv", "file"),
    ],
)
def test_kind_follows_the_library_format(path: str, kind: str) -> None:
    assert kind_of(path) == kind


def test_markdown_title_is_the_first_level_one_heading() -> None:
    doc = doc_of("Articles/a.md", "intro\n## Not this\n# Skapa projekt ##\ntext\n# Later\n")
    assert doc.title == "Skapa projekt"
    assert "intro" in doc.body


def test_readme_without_heading_is_named_by_its_folder() -> None:
    assert doc_of("Resources/Analys - R/README.md", "text only").title == "Analys - R"
    assert doc_of("Articles/Utan rubrik.md", "text only").title == "Utan rubrik.md"


def test_template_fields() -> None:
    doc = doc_of(
        "Templates/t.json",
        json.dumps(
            {
                "name": "Demo ML Titanic",
                "git": "https://example.org/t.git",
                "html": "https://example.org/t",
                "description": "Demoprojekt för ML",
                "tags": ["Demo", "ML"],
            }
        ),
    )
    assert doc.kind == "template"
    assert doc.title == "Demo ML Titanic"
    assert "Demoprojekt för ML" in doc.body and "Demo ML" in doc.body


@pytest.mark.parametrize("content", ['{"name": "Brok', "[1, 2]", '{"name": 5}', b"\xff\xfe{"])
def test_broken_templates_are_tolerated(content: str | bytes) -> None:
    doc = doc_of("Templates/broken.json", content)
    assert doc.kind == "template"
    assert doc.title == "broken.json"


def notebook(*cells: tuple[str, str | list[str]]) -> str:
    return json.dumps(
        {
            "nbformat": 4,
            "cells": [
                {
                    "cell_type": t,
                    "source": s,
                    "metadata": {},
                    **({"outputs": [{"text": "OUTPUT-NOT-INDEXED"}]} if t == "code" else {}),
                }
                for t, s in cells
            ],
        }
    )


def test_notebook_markdown_and_code_cells_without_outputs() -> None:
    doc = doc_of(
        "Resources/P/Läs.ipynb",
        notebook(
            ("markdown", ["## Inledning\n", "Läs parquet\n"]),
            ("markdown", "# Läsa Parquet"),
            ("code", "pd.read_parquet('x.parquet')"),
            ("raw", "RAW-NOT-INDEXED"),
        ),
    )
    assert doc.kind == "notebook"
    assert doc.title == "Läsa Parquet"
    assert "Läs parquet" in doc.body and "pd.read_parquet" in doc.body
    assert "NOT-INDEXED" not in doc.body


@pytest.mark.parametrize("content", ["{not json", '{"cells": 5}', '{"cells": [1, {"x": 2}]}', "[]"])
def test_broken_notebooks_are_found_by_name(content: str) -> None:
    doc = doc_of("Resources/P/Trasig.ipynb", content)
    assert (doc.kind, doc.title, doc.body) == ("notebook", "Trasig.ipynb", "")


def test_large_code_is_found_by_name_only() -> None:
    chosen = plan("Resources/X/big.py", CODE_MAX_BYTES + 1)
    assert chosen.extractor is None
    doc = build("lib", "Resources/X/big.py", chosen, None, None)
    assert (doc.kind, doc.title, doc.body, doc.content_hash) == ("code", "big.py", "", "1:name")


def test_binary_and_nul_and_long_text() -> None:
    assert doc_of("Resources/X/bin.py", b"\x00\x01\x02print()").body == ""
    assert "\x00" not in doc_of("Articles/a.md", "a\x00b" + "\x00" * 9000).body
    assert len(doc_of("Articles/long.md", "ord " * 100_000).body) == MAX_BODY_CHARS


def test_content_hash_is_the_git_blob_id() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert blob_hash(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert (
        doc_of("Articles/a.md", "hello\n").content_hash
        == "1:ce013625030ba8dba906f756967f9e9ca394464a"
    )


def test_text_is_stored_composed() -> None:
    doc = doc_of("Articles/a.md", "# Ha\u0308mta\nha\u0308mta")
    assert doc.title == "Hämta" and doc.body == "# Hämta\nhämta"
