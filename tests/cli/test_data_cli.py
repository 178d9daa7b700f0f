"""``balsam login`` and ``balsam data`` against the live test server."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from balsam.cli import main
from tests.fixtures.app import PASSWORD, TestUser


@pytest.fixture
def env(live_url: str, alice: TestUser, tmp_path: Path) -> dict[str, str]:
    return {"BALSAM_CREDENTIALS": str(tmp_path / "credentials.json"), "BALSAM_URL": ""}


def _run(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_login_then_upload_list_preview_download_and_remove(
    live_url: str, alice: TestUser, project: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    done = _run(
        env, "login", "--url", live_url, "--username", alice.username, input=PASSWORD + "\n"
    )
    assert done.exit_code == 0, done.output
    saved = Path(env["BALSAM_CREDENTIALS"])
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert PASSWORD not in saved.read_text() and json.loads(saved.read_text())["token"]

    local = tmp_path / "län.csv"
    local.write_text("a;b\n1;2\n", encoding="utf-8")
    remote = f"{project['id']}:main/in/län.csv"
    done = _run(env, "data", "cp", str(local), remote)
    assert done.exit_code == 0 and "sha256" in done.output, done.output

    listing = _run(env, "data", "ls", f"{project['id']}:main/in/")
    assert "main/in/län.csv" in listing.output
    shown = _run(env, "data", "preview", remote)
    assert shown.output.splitlines()[:2] == ["a (integer)\tb (integer)", "1\t2"]

    back = tmp_path / "tillbaka.csv"
    assert _run(env, "data", "cp", remote, str(back)).exit_code == 0
    assert back.read_bytes() == local.read_bytes()
    moved = remote.replace(":main/", ":main/flyttad/")
    assert _run(env, "data", "mv", remote, moved).exit_code == 0
    assert _run(env, "data", "mv", moved, remote).exit_code == 0
    removed = _run(env, "data", "rm", remote)
    assert removed.exit_code == 0 and "restorable" in removed.output
    missing = _run(env, "data", "cp", remote, "-")
    assert missing.exit_code == 1 and "404" in missing.output
    scratch = f"{project['id']}:tmp/kladd.csv"
    assert _run(env, "data", "cp", "--expires-in-days", "2", str(local), scratch).exit_code == 0
    assert "(expires " in _run(env, "data", "ls", f"{project['id']}:tmp/").output


def test_without_login_or_with_a_wrong_password_it_says_so(
    live_url: str, alice: TestUser, env: dict[str, str]
) -> None:
    done = _run(env, "data", "ls", "x:")
    assert done.exit_code == 1 and "balsam login" in done.output
    wrong = _run(env, "login", "--url", live_url, "--username", alice.username, input="nej\n")
    assert wrong.exit_code == 1 and "401" in wrong.output
    assert not Path(env["BALSAM_CREDENTIALS"]).exists()
