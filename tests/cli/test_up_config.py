"""`balsam up` refuses bad configuration with one line and exit 2, before it creates
or migrates anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import run_balsam_up, up_env  # noqa: F401 - the fixture
from tests.fixtures.server import free_port


def test_an_admin_password_the_policy_refuses_stops_before_anything_is_made(
    up_env: dict[str, str],  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    database = tmp_path / "balsam.db"
    env = {
        **up_env,
        "BALSAM_ADMIN_PASSWORD": "short",
        "BALSAM_DATABASE_URL": f"sqlite:///{database}",
    }

    done = run_balsam_up(env, data_dir, free_port())

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "BALSAM_ADMIN_PASSWORD" in lines[0], done.stderr
    assert "at least" in lines[0]
    assert "short" not in done.stderr  # the password is not echoed
    assert not database.exists() and not data_dir.exists()


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("BALSAM_WORKSPACES__TEMPLATES_FILE", "/nonexistent/templates.json", "No such file"),
        ("BALSAM_WORKSPACES__TEMPLATES_FILE", "{bad}", "cannot use"),
        ("BALSAM_DATABASE_URL", "foo://x", "cannot connect"),
        ("BALSAM_DATABASE_URL", "postgresql+psycopg://balsam:s3cret-pw@127.0.0.1:1/x",
         "cannot connect"),
        # A list given as plain text: the environment source cannot even parse it.
        ("BALSAM_SOURCE_FILE_ROOTS", "/srv/sources", "are JSON"),
        ("BALSAM_WORKSPACES__PORT", "{port}", "another port than BALSAM_PORT"),
    ],
)  # fmt: skip
def test_a_templates_file_or_database_that_cannot_be_used_stops_before_anything_is_made(
    up_env: dict[str, str],  # noqa: F811 - the imported fixture
    tmp_path: Path,
    name: str,
    value: str,
    words: str,
) -> None:
    data_dir = tmp_path / "data"
    if value == "{bad}":
        value = str(tmp_path / "templates.json")
        Path(value).write_text("[{not json")
    port = free_port()
    value = value.replace("{port}", str(port))
    env = {**up_env, "BALSAM_DATABASE_URL": f"sqlite:///{tmp_path / 'balsam.db'}", name: value}

    done = run_balsam_up(env, data_dir, port)

    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0] and words in lines[0], done.stderr
    assert "s3cret-pw" not in done.stderr
    assert not data_dir.exists()
