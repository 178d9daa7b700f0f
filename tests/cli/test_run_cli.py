"""``balsam run`` against the live test server: a run followed to its end, its exit
status, parameters, and refusals."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from balsam.cli import main
from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.web.runs.test_runs import commit, notebook, run_worker  # noqa: F401 - fixture


def _run(live_url: str, user: TestUser, *args: str) -> Any:
    env = {"BALSAM_URL": live_url, "BALSAM_TOKEN": user.token, "BALSAM_CREDENTIALS": "/nonexistent"}
    return CliRunner().invoke(main, ["run", *args], env=env, catch_exceptions=False)


def test_a_run_is_followed_to_its_end_with_its_steps(
    live_url: str, alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    commit(ctx, project, {"a.ipynb": notebook("print(year, label)", parameters="year = 0"),
                          "bad.py": b"raise SystemExit(3)\n"})  # fmt: skip
    done = _run(live_url, alice, f"{project['id']}:a.ipynb", "--template", "python",
                "--param", "year=2026", "--param", "label=Åland")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "a.ipynb: running" in done.output and "a.ipynb: succeeded" in done.output
    assert done.output.rstrip().splitlines()[-1].startswith("succeeded; record: ")
    runs = alice.client.get(f"/api/v1/projects/{project['id']}/runs").json()["items"]
    assert runs[0]["parameters"] == {"year": 2026, "label": "Åland"}
    failed = _run(live_url, alice, f"{project['id']}:bad.py", "--template", "python")
    assert failed.exit_code == 1 and "bad.py: failed" in failed.output
    assert "exited with status 3" in failed.output


def test_refusals_are_told_and_start_nothing(
    live_url: str, alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    for user, args, says in (
        (alice, [f"{project['id']}:missing.py"], "422"),
        (alice, [f"{project['id']}:a.py", "--param", "novalue"], "NAME=VALUE"),
        (alice, ["no-colon"], "PROJECT:PATH"),
        (bob, [f"{project['id']}:a.py"], "404"),
    ):
        done = CliRunner().invoke(
            main,
            ["run", *args],
            env={"BALSAM_URL": live_url, "BALSAM_TOKEN": user.token},
        )
        assert done.exit_code != 0 and says in done.output, done.output
    assert alice.client.get(f"/api/v1/projects/{project['id']}/runs").json()["total"] == 0
