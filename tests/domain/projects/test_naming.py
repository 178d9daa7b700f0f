"""Project ids, bucket names, branch names and file ids (architecture §3)."""

from __future__ import annotations

import pytest

from balsam.domain.projects import naming
from balsam.errors import InvalidInput, NotFound


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Årsstatistik för Åland", "arsstatistik-for-aland"),
        ("My Project", "my-project"),
        ("my-project", "my-project"),
        ("Ελληνικά δεδομένα", "ellenika-dedomena"),
        ("  spaces   everywhere ", "spaces-everywhere"),
        ("Äsa", "asa"),
    ],
)
def test_slug_transliterates(name: str, slug: str) -> None:
    assert naming.slug_base(name) == slug


def test_candidates_are_s3_and_kubernetes_safe() -> None:
    for name in ["x", "Åsa", "a" * 500, "Статистика 2024", "1.2.3.4", "ab--cd"]:
        for candidate in naming.project_id_candidates(name):
            assert naming.is_valid_bucket(candidate), candidate
            assert len(f"proj-{candidate}") <= 63


def test_colliding_names_get_distinct_suffixed_ids() -> None:
    first, *rest = naming.project_id_candidates("Åsa")
    assert first == "asa"
    assert len(set(rest)) == len(rest) and all(r.startswith("asa-") for r in rest)


@pytest.mark.parametrize("name", ["", "   ", "!!!", "🎉🎉", "x" * 201, "a\x00b", "tab\x07"])
def test_bad_display_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        naming.validate_display_name(name)


def test_name_key_ignores_case_and_spacing() -> None:
    assert naming.name_key(" My   Project ") == naming.name_key("my project")
    assert naming.name_key("Åsa") != naming.name_key("Asa")


@pytest.mark.parametrize("name", ["main", "dev-1", "feature_x", "v1.2", "Release"])
def test_good_branch_names(name: str) -> None:
    assert naming.validate_branch_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-x",
        "a..b",
        "x.lock",
        "a/b",
        "HEAD",
        "a b",
        "x.",
        "ä",
        "a~1",
        "a^",
        "a:b",
        "a\\b",
        "@{x}",
        "x" * 101,
    ],
)
def test_bad_branch_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        naming.validate_branch_name(name)


@pytest.mark.parametrize("path", ["README.md", "a/b c/ö #%?.txt", "Resources/X/y.ipynb"])
def test_file_ids_round_trip_and_are_one_segment(path: str) -> None:
    file_id = naming.encode_file_id(path)
    assert "/" not in file_id and "=" not in file_id
    assert naming.decode_file_id(file_id) == path


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "a\x00b", "a\\b", "./a", ""]
)
def test_file_ids_refuse_traversal(path: str) -> None:
    with pytest.raises(NotFound):
        naming.decode_file_id(naming.encode_file_id(path))


@pytest.mark.parametrize("file_id", ["%2e%2e", "..", "!!", "Li4vZXRj", "YQ=="])
def test_malformed_file_ids(file_id: str) -> None:
    with pytest.raises(NotFound):
        naming.decode_file_id(file_id)
