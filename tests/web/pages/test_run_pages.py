"""The portal's runs: the *Körningar* tab, *Kör* on a file, a run's page following it
to its end with its record linked, cancelling; who may, and what is refused."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.web.pages.browsing import ORIGIN, browser, post
from tests.web.runs.test_runs import commit, notebook, run_worker  # noqa: F401 - fixture
from tests.web.test_pages import assert_only_balsams_scripts

XSS = "<script>alert(1)</script>"


def _until_ended(client: Any, url: str) -> str:
    deadline = time.monotonic() + 600
    while True:
        page = client.get(url)
        assert page.status_code == 200, page.text
        if 'http-equiv="refresh"' not in page.text:  # it reloads itself while it goes
            return str(page.text)
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_a_member_runs_a_file_from_its_page_and_follows_it(
    app: FastAPI, alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    commit(ctx, project, {"nb/a.ipynb": notebook(f"print({XSS!r})", parameters="n = 1"),
                          "nb/readme.txt": b"x"})  # fmt: skip
    base = f"/projects/{project['id']}"
    with browser(app, alice, language="sv") as client:
        file_page = client.get(f"{base}/file?branch=main&path=nb/a.ipynb")
        assert file_page.status_code == 200 and 'id="run-file"' in file_page.text
        other = client.get(f"{base}/file?branch=main&path=nb/readme.txt")
        assert 'id="run-file"' not in other.text  # nothing to run
        form = {"branch": "main", "path": "nb/a.ipynb", "parameters": '{"n": 3}'}
        answer = post(client, f"{base}/runs", {**form, "template": "python"})
        assert answer.status_code == 303, answer.text
        run_page = answer.headers["location"]
        assert run_page.startswith(f"{base}/runs/")
        ended = _until_ended(client, run_page)
        assert "Lyckades" in ended and "Öppna protokollet (JSON)" in ended
        assert ("/record" in ended and "&#34;n&#34;: 3" in ended) or '"n": 3' in ended
        assert_only_balsams_scripts(ended)
        tab = client.get(f"{base}?tab=runs")
        assert tab.status_code == 200 and "Körningar" in tab.text
        assert run_page.rsplit("/", 1)[1] in tab.text and "nb/a.ipynb" in tab.text
        record = client.get(
            f"/api/v1/projects/{project['id']}/runs/{run_page.rsplit('/', 1)[1]}/record"
        )
        assert record.status_code == 200 and record.json()["parameters"] == {"n": 3}


def test_what_cannot_run_is_shown_at_the_form_and_nothing_is_queued(
    app: FastAPI, alice: TestUser, project: dict[str, Any]
) -> None:
    base = f"/projects/{project['id']}"
    with browser(app, alice) as client:
        for form, says in (
            ({"branch": "main", "path": "missing.py"}, "No file"),
            ({"branch": "main", "path": "a.py", "parameters": "[1"}, "must be a JSON object"),
            ({"branch": "main", "path": "a.py", "parameters": "[1]"}, "must be a JSON object"),
            ({"branch": "main", "path": ""}, "Give the branch and the path"),
            ({"branch": "main", "path": f"{XSS}.py"}, "No file"),
        ):
            answer = post(client, f"{base}/runs", form)
            assert 400 <= answer.status_code < 500, answer.text
            assert says in answer.text and 'id="run-error"' in answer.text
            assert "<script>alert" not in answer.text
    assert alice.client.get(f"/api/v1/projects/{project['id']}/runs").json()["total"] == 0


def test_outsiders_and_forged_forms_start_nothing(
    app: FastAPI, alice: TestUser, bob: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    commit(ctx, project, {"s.py": b"print(1)"})
    base = f"/projects/{project['id']}"
    form = {"branch": "main", "path": "s.py", "template": "python"}
    with browser(app, bob) as client:
        assert post(client, f"{base}/runs", form).status_code == 404
        assert client.get(f"{base}/runs/nope").status_code == 404
    with browser(app, alice) as client:
        no_token = client.post(f"{base}/runs", data=form, headers={"Origin": ORIGIN})
        assert no_token.status_code == 403
        elsewhere = client.post(
            f"{base}/runs", data=form, headers={"Origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403
    assert alice.client.get(f"/api/v1/projects/{project['id']}/runs").json()["total"] == 0


def test_a_run_is_cancelled_from_its_page(
    app: FastAPI, alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    commit(ctx, project, {"slow.py": b"import time\ntime.sleep(120)\n"})
    base = f"/projects/{project['id']}"
    with browser(app, alice) as client:
        answer = post(client, f"{base}/runs", {"branch": "main", "path": "slow.py",
                                               "template": "python"})  # fmt: skip
        run_page = answer.headers["location"]
        deadline = time.monotonic() + 600
        while "Cancel the run" not in (page := client.get(run_page).text) or "Running" not in page:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        cancelled = post(client, f"{run_page}/cancel")
        assert cancelled.status_code == 303
        assert "Cancelling" in client.get(cancelled.headers["location"]).text
        assert "Cancelled" in _until_ended(client, run_page)
