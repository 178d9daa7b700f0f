"""Structured views over SCB's real library (counted from shared/upstream/knowledge-library)
and over a library with broken templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from balsam.context import AppContext
from balsam.domain.library import catalog
from balsam.domain.library.catalog import LibraryLinks
from balsam.domain.library.service import LibraryService
from balsam.domain.library.tree import LibraryTree
from balsam.domain.projects.naming import encode_file_id
from tests.fixtures.library import git

LINKS = LibraryLinks("http://balsam.test/api/v1/knowledge-libraries/scb")

SCB_RESOURCES = [
    "Analys - OLAP",
    "Analys - Python",
    "Analys - R",
    "Datalagring - Minio-s3",
    "Datalagring - Parquet",
    "Exempelsamling diagramtyper i R",
    "Hämta data från internet",
    "InstallPackages",
    "Introduktion - Första introduktion till miljön",
    "Maskininlärning och AI-programmering",
    "Produktionsflöden",
]
SCB_TEMPLATES = {
    "DataportalXML",
    "UrbanAIZE",
    "Demo Prod Imputering",
    "Demo Prod IndOms",
    "Demo ML Titanic",
    "Mall ML",
}


@pytest.fixture(scope="module")
def scb(ctx: AppContext, scb_library: dict[str, Any]) -> LibraryTree:
    return LibraryService(ctx).tree(scb_library["id"])


@pytest.fixture(scope="module")
def adv(adversarial_repo: Path) -> LibraryTree:
    return LibraryTree(adversarial_repo / ".git", git(adversarial_repo, "rev-parse", "HEAD"))


def test_scb_articles(scb: LibraryTree) -> None:
    found = [(a.category, a.title) for a in catalog.articles(scb, LINKS)]

    assert len(found) == 8
    assert ("", "Snabbintroduktion till BALSAM") in found and ("", "Länkar") in found
    assert ("Balsam/Projekt", "Skapa projekt") in found
    assert ("Balsam/Kunskapsbibliotek", "Kunskapsbibliotek") in found
    assert [c for c, _ in found] == sorted(c for c, _ in found)


def test_scb_article_links(scb: LibraryTree) -> None:
    article = next(a for a in catalog.articles(scb, LINKS) if a.title == "Länkar")
    assert article.path == "Articles/Länkar.md" and article.name == "Länkar.md"
    assert article.id == encode_file_id(article.path)
    assert article.content_url == LINKS.content(article.path)
    assert article.render_url == LINKS.render(article.path)


def test_scb_resources(scb: LibraryTree) -> None:
    found = catalog.resources(scb, LINKS)

    assert [r.name for r in found.resources] == SCB_RESOURCES
    assert [f.path for f in found.shared_files] == ["Resources/README.md"]
    assert all(r.readme is not None and r.readme.name == "README.md" for r in found.resources)
    flows = next(r for r in found.resources if r.name == "Produktionsflöden")
    paths = {f.path for f in flows.files}
    assert "Resources/Produktionsflöden/produktionsflöde.pipeline" in paths
    assert "Resources/Produktionsflöden/Resurser/PR-Parquet.pipeline" in paths
    assert len(flows.files) == 9


def test_scb_templates(scb: LibraryTree) -> None:
    found = catalog.templates(scb, LINKS)

    assert {t.name for t in found} == SCB_TEMPLATES
    assert all(t.error is None and t.git and t.git.startswith("https://") for t in found)
    titanic = next(t for t in found if t.name == "Demo ML Titanic")
    assert titanic.tags == ["Demo", "ML"]
    assert titanic.html == "https://github.com/statisticssweden/balsam-demo-titanic"


def test_scb_example_projects(scb: LibraryTree) -> None:
    found = catalog.examples(scb, LINKS)

    assert found.readme is not None and found.readme.path == "ExampleProjects/REAME.md"
    assert [e.name for e in found.examples] == [
        "Hämta data från dataportal.se",
        "Normalproduktion med standardisering",
    ]
    dataportal, production = found.examples
    assert dataportal.readme is not None and len(dataportal.files) == 3
    assert dataportal.variants == []
    assert [v.name for v in production.variants] == [
        "Python - Månadsproduktion enligt SPS",
        "R - Månadsproduktion enligt SPS",
    ]
    assert len(production.files) == 25


def test_scb_readme(scb: LibraryTree) -> None:
    assert catalog.find_readme(scb, "") == "README.md"
    assert catalog.find_readme(scb, "ExampleProjects") == "ExampleProjects/REAME.md"
    assert catalog.find_readme(scb, "Templates") is None


def test_bad_templates_are_reported_not_raised(adv: LibraryTree) -> None:
    found = {t.path.removeprefix("Templates/"): t for t in catalog.templates(adv, LINKS)}

    good = found["good.json"]
    assert good.error is None and good.name == "Bra" and good.html is None  # javascript:
    assert "Not valid JSON" in (found["broken.json"].error or "")
    assert found["broken.json"].name == "broken"
    assert found["array.json"].error == "The file must hold a JSON object."
    assert found["types.json"].error == "'name' must be a string."
    assert found["latin1.json"].error is not None


def test_articles_without_heading_use_the_file_name(adv: LibraryTree) -> None:
    found = {a.path: a for a in catalog.articles(adv, LINKS)}
    assert found["Articles/Utan rubrik.md"].title == "Utan rubrik"
    assert found["Articles/Utan rubrik.md"].category == ""
    assert found["Articles/Ond/Artikel.md"].category == "Ond"


def test_missing_sections_are_empty(adv: LibraryTree) -> None:
    assert catalog.resources(adv, LINKS).resources == []
    assert catalog.examples(adv, LINKS).examples == []
    assert catalog.articles(LibraryTree(adv.git_dir, None), LINKS) == []


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("# Rubrik\n", "Rubrik"),
        ("\ufeff# Med BOM #\n", "Med BOM"),
        ("```\n# kod\n```\n# Riktig\n", "Riktig"),
        ("## Nivå 2\n", None),
        ("#utan mellanslag", None),
        ("text\n# Senare\n", "Senare"),
    ],
)
def test_heading(text: str, title: str | None) -> None:
    assert catalog.heading(text) == title
