"""``balsam library``: add, list, sync and remove without a running server."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from balsam.cli import main
from tests.fixtures.library import file_url, git, make_repo


def balsam(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_library_commands(fresh_database_url: str, tmp_path: Path) -> None:
    roots = tmp_path / "sources"
    repo = make_repo(roots / "lib", {"README.md": b"# Bibliotek\n"})
    env = {
        "BALSAM_DATABASE_URL": fresh_database_url,
        "BALSAM_DATA_DIR": str(tmp_path / "data"),
        "BALSAM_SOURCE_FILE_ROOTS": json.dumps([str(roots)]),
    }

    added = balsam(env, "library", "add", "Mitt bibliotek", file_url(repo))
    assert added.exit_code == 0, added.output
    head = git(repo, "rev-parse", "HEAD")
    assert "registered mitt-bibliotek" in added.output and head in added.output

    listed = balsam(env, "library", "list")
    assert listed.exit_code == 0 and "mitt-bibliotek" in listed.output
    assert head[:12] in listed.output and " ok " in listed.output

    assert balsam(env, "library", "sync").exit_code == 0
    repo.rename(roots / "moved")
    failed = balsam(env, "library", "sync", "mitt-bibliotek")
    assert failed.exit_code == 1 and "failed (serving " + head in failed.output

    assert balsam(env, "library", "remove", "mitt-bibliotek").exit_code == 0
    assert "mitt-bibliotek" not in balsam(env, "library", "list").output


def test_library_refusals(fresh_database_url: str, tmp_path: Path) -> None:
    env = {"BALSAM_DATABASE_URL": fresh_database_url, "BALSAM_DATA_DIR": str(tmp_path / "data")}

    bad = balsam(env, "library", "add", "X-bibliotek", "ssh://git@example.org/x.git")
    assert bad.exit_code == 1 and "repositoryUrl" in bad.output
    outside = balsam(env, "library", "add", "Y-bibliotek", file_url(tmp_path))
    assert outside.exit_code == 1 and "BALSAM_SOURCE_FILE_ROOTS" in outside.output
    missing = balsam(env, "library", "remove", "nope")
    assert missing.exit_code == 1 and "No knowledge library" in missing.output
