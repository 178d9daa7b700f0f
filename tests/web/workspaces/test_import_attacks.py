"""An attack on imports from inside a real workspace kernel: the kernel serves HTTP on
127.0.0.1, a service only the machine itself reaches; its user, a project member, asks
Balsam to import from it, directly (in several spellings of the address) and through
a redirect from a host the installation allows. Every attempt is refused, and the
kernel's server never hears from Balsam."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from balsam.app import create_app
from balsam.context import AppContext
from balsam.wiring import derive
from tests.fixtures.app import TestUser, _make_user
from tests.fixtures.http_source import Answer, http_source, import_worker_paused
from tests.fixtures.workspaces import Kernel, wait_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspaces run under their own uid only as root"
)

#: The machine's own address, as a URL may spell it.
LOOPBACK = (
    "127.0.0.1",
    "localhost",
    "2130706433",
    "127.1",
    "0.0.0.0",  # noqa: S104 (an address to refuse, not one bound to)
    "[::ffff:127.0.0.1]",
)

#: Run in the kernel: an HTTP server on loopback that records the paths it is asked for.
SERVER = r"""
import http.server, json, threading
HITS = []
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        HITS.append(self.path)
        body = b"kernel secret"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
_SERVER = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
threading.Thread(target=_SERVER.serve_forever, daemon=True).start()
print(json.dumps(_SERVER.server_address[1]))
"""


@pytest.fixture(scope="module")
def member(ctx: AppContext, app: FastAPI) -> Iterator[TestUser]:
    user = _make_user(ctx, app, f"importer{secrets.token_hex(3)}", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def project(member: TestUser) -> dict[str, Any]:
    answer = member.client.post(
        "/api/v1/projects",
        json={"name": f"Import {secrets.token_hex(3)}", "description": "", "branchName": "main"},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture(scope="module")
def kernel(
    live_url: str, member: TestUser, project: dict[str, Any], supervisor: Any
) -> Iterator[Kernel]:
    answer = member.client.post(
        "/api/v1/workspaces",
        json={
            "name": "imp",
            "templateId": "python",
            "projectId": project["id"],
            "branchId": "main",
        },
    )
    assert answer.status_code == 201, answer.text
    workspace = wait_state(member, answer.json()["id"], "running")
    started = Kernel(live_url, workspace["id"], member.headers)
    yield started
    started.close()


def _run(kernel: Kernel, code: str) -> Any:
    result = kernel.execute(code, timeout=60)
    assert result.error is None, result
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_member_cannot_import_from_a_service_on_the_machines_loopback(
    ctx: AppContext, app: FastAPI, kernel: Kernel, member: TestUser, project: dict[str, Any]
) -> None:
    port = _run(kernel, SERVER)
    # The service is there, and Balsam's process reaches it: a fetch that let it through
    # would get its secret.
    probe = httpx.get(f"http://127.0.0.1:{port}/probe", timeout=10)
    assert probe.text == "kernel secret"
    assert _run(kernel, "print(json.dumps(HITS)); HITS.clear()") == ["/probe"]

    imports = f"/api/v1/projects/{project['id']}/imports"
    for host in LOOPBACK:
        answer = member.client.post(
            imports, json={"url": f"http://{host}:{port}/direct", "target": "main/stolen"}
        )
        assert answer.status_code == 422, (host, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")

    # An installation that allows 'localhost' (its internal file server, say): a source
    # there that redirects to the kernel's service is still not followed.
    settings = ctx.settings.model_copy(update={"source_private_hosts": ["localhost"]})
    allowing = create_app(settings, ctx=derive(ctx, settings=settings))
    client = TestClient(allowing, raise_server_exceptions=False, headers=member.headers)
    with import_worker_paused(app), http_source() as allowed:
        for n, host in enumerate(("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]")):
            allowed.answers[f"/{n}"] = Answer(
                302, headers={"Location": f"http://{host}:{port}/redirected"}
            )
            answer = client.post(
                imports, json={"url": allowed.url(f"/{n}", "localhost"), "target": "main/s"}
            )
            assert answer.status_code == 202, answer.text
            done = client.get(f"{imports}/{answer.json()['id']}").json()
            assert done["state"] == "failed" and "private or local" in done["error"], done
        assert len(allowed.requests) == 3
    client.close()

    assert _run(kernel, "print(json.dumps(HITS))") == []
    assert ctx.providers.storage.objects.head(project["bucket"], "main/stolen") is None
    assert ctx.providers.storage.objects.head(project["bucket"], "main/s") is None
