"""Settings are documented: every field has a description, and docs/settings.md is current."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from balsam.cli import main
from balsam.cli.settings_cmd import iter_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_has_a_description() -> None:
    undocumented = [doc.env for doc in iter_settings() if not doc.description]

    assert undocumented == []


def test_docs_settings_md_is_generated_from_the_settings() -> None:
    generated = CliRunner().invoke(main, ["settings", "--format", "markdown"], env={}).output

    assert DOCS.read_text(encoding="utf-8") == generated, (
        "docs/settings.md is stale: run `make docs` "
        "(balsam settings --format markdown > docs/settings.md)"
    )
