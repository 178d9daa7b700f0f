"""Recorded runs end to end: a real runner in the template's environment, real kernels,
the real SeaweedFS; and what a run's own code can reach (attacks from inside a node)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from balsam.context import AppContext
from balsam.db.models import Run
from balsam.domain.runs.worker import RunWorker
from balsam.providers.git.base import Author
from tests.domain.runs.test_plan import node, pipeline
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import START_TIMEOUT

AUTHOR = Author("Test", "test@example.org")
TEMPLATE = "python"


@pytest.fixture(scope="module", autouse=True)
def run_worker(app: FastAPI, ctx: AppContext) -> Iterator[None]:
    """The app's RunWorker, as its lifespan starts it: runs go on in the background
    (without it, a run is carried out inside the request that asked for it)."""
    worker = RunWorker(ctx, poll=0.5)
    worker.start()
    app.state.runs = worker
    yield
    worker.stop()
    app.state.runs = None


def notebook(*cells: str, parameters: str | None = None) -> bytes:
    """A Python notebook; ``parameters`` becomes a cell tagged 'parameters'."""
    made = [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
             "execution_count": None} for c in cells]  # fmt: skip
    if parameters is not None:
        made.insert(0, {"cell_type": "code", "metadata": {"tags": ["parameters"]},
                        "source": parameters, "outputs": [], "execution_count": None})  # fmt: skip
    meta = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    return json.dumps({"cells": made, "metadata": meta, "nbformat": 4,
                       "nbformat_minor": 5}).encode()  # fmt: skip


def commit(ctx: AppContext, project: dict[str, Any], files: dict[str, bytes]) -> str:
    return ctx.providers.git.commit_files(project["id"], "main", files, message="code",
                                          author=AUTHOR)  # fmt: skip


def start(user: TestUser, project: dict[str, Any], path: str, **extra: Any) -> dict[str, Any]:
    body = {"branchId": "main", "path": path, "template": TEMPLATE, **extra}
    answer = user.client.post(f"/api/v1/projects/{project['id']}/runs", json=body)
    assert answer.status_code == 202, answer.text
    created: dict[str, Any] = answer.json()
    assert created["state"] in ("queued", "running")
    return created


def wait_ended(user: TestUser, project: dict[str, Any], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        body: dict[str, Any] = user.client.get(
            f"/api/v1/projects/{project['id']}/runs/{run_id}"
        ).json()
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def read(ctx: AppContext, project: dict[str, Any], key: str) -> bytes | None:
    opened = ctx.providers.storage.objects.open(project["bucket"], key)
    return None if opened is None else b"".join(opened[1])


ATTACK = """
import boto3, os, json
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
bucket, run = os.environ["BALSAM_BUCKET"], os.environ["BALSAM_RUN_ID"]
seen = {}
def attempt(name, call):
    try:
        call(); seen[name] = "ok"
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or str(exc)
        seen[name] = type(exc).__name__ + ":" + str(code)
attempt("own prefix", lambda: s3.put_object(Bucket=bucket, Key=f"runs/{run}/x.txt", Body=b"x"))
attempt("main", lambda: s3.put_object(Bucket=bucket, Key="main/evil.txt", Body=b"x"))
attempt("other run", lambda: s3.put_object(Bucket=bucket, Key="runs/other/x.txt", Body=b"x"))
attempt("delete", lambda: s3.delete_object(Bucket=bucket, Key="main/keep.txt"))
attempt("read", lambda: s3.get_object(Bucket=bucket, Key="main/keep.txt"))
attempt("other project", lambda: s3.list_objects_v2(Bucket=os.environ["OTHER_BUCKET"]))
attempt("balsam data", lambda: open(os.environ["DATA_DIR"] + "/balsam.db", "rb").read(1))
node = os.getppid()  # the kernel's parent: the node's process; its parent: the runner
runner = int(open(f"/proc/{node}/stat").read().rsplit(")", 1)[1].split()[1])
attempt("runner events", lambda: open(f"/proc/{runner}/fd/1", "w").write('{"event":"x"}\\n'))
pid = os.fork()
if pid == 0:  # a daemon that would outlive the run: double fork, new session
    os.setsid()
    if os.fork() == 0:
        import time
        open("out/daemon.txt", "w").write(str(os.getpid()))
        time.sleep(100000)
    os._exit(0)
os.waitpid(pid, 0)
import time
while not os.path.exists("out/daemon.txt"):
    time.sleep(0.05)
import ipykernel
seen["transport"] = json.load(open(ipykernel.get_connection_file()))["transport"]
os.makedirs("out", exist_ok=True)
json.dump(seen, open("out/c.json", "w"))
"""


@pytest.fixture
def other(make_user: Callable[..., TestUser], unique: Callable[[str], str]) -> dict[str, Any]:
    answer = make_user("other").client.post(
        "/api/v1/projects", json={"name": unique("Other "), "branchName": "main"}
    )
    assert answer.status_code == 201
    body: dict[str, Any] = answer.json()
    return body


def test_a_pipeline_runs_recorded_and_publishes_its_outputs(
    alice: TestUser,
    bob: TestUser,
    project: dict[str, Any],
    other: dict[str, Any],
    ctx: AppContext,
) -> None:
    ctx.providers.storage.objects.put(project["bucket"], "main/keep.txt", b"keep",
                                      content_type="text/plain", metadata={})  # fmt: skip
    attack = ATTACK.replace('os.environ["OTHER_BUCKET"]', repr(other["bucket"])).replace(
        'os.environ["DATA_DIR"]', repr(str(ctx.settings.data_dir))
    )
    files = {
        "flow/a.ipynb": notebook(
            "import os\nos.makedirs('out', exist_ok=True)\n"
            "open('out/a.txt', 'w').write(str(n * 2))",
            parameters="n = 1",
        ),
        "flow/b.py": b"import json, os\nn = json.loads(os.environ['BALSAM_PARAMETERS'])['n']\n"
        b"open('out/b.txt', 'w').write(open('out/a.txt').read() + '+b' + str(n))\n",
        "flow/c.ipynb": notebook(attack),
        "flow/p.pipeline": pipeline(
            node("a", "a.ipynb", outputs=("out/a.txt",)),
            node("b", "b.py", after=("a",), op="execute-python-node", outputs=("out/b.txt",)),
            node("c", "c.ipynb", outputs=("out/c.json", "out/daemon.txt")),
        ),
    }
    sha = commit(ctx, project, files)
    parameters = {"n": 7, "source": "main/keep.txt"}
    run = wait_ended(alice, project, start(alice, project, "flow/p.pipeline",
                                           parameters=parameters)["id"])  # fmt: skip
    assert run["state"] == "succeeded", run
    assert run["commit"] == sha and run["dirty"] is False
    assert [n["state"] for n in run["nodes"]] == ["succeeded"] * 3
    # Published at their stable paths, as new versions carrying the run's id.
    assert read(ctx, project, "main/flow/out/a.txt") == b"14"
    assert read(ctx, project, "main/flow/out/b.txt") == b"14+b7"
    head = ctx.providers.storage.objects._s3.head_object(
        Bucket=project["bucket"], Key="main/flow/out/b.txt"
    )
    assert head["Metadata"]["balsam-run-id"] == run["id"]
    # What the run's own code could do with its key.
    seen = json.loads(read(ctx, project, "main/flow/out/c.json") or b"{}")
    assert seen["own prefix"] == "ok" and seen["read"] == "ok", seen
    for refused in ("main", "other run", "delete", "other project"):
        assert "AccessDenied" in seen[refused], (refused, seen)
    assert seen["balsam data"].startswith(("PermissionError", "FileNotFoundError")), seen
    assert seen["transport"] == "ipc"  # the kernel's channels: no TCP port
    assert seen["runner events"].startswith("PermissionError"), seen  # not dumpable
    daemon = int(read(ctx, project, "main/flow/out/daemon.txt") or b"0")
    assert daemon and not alive(daemon)  # nothing outlives its run
    assert read(ctx, project, "main/keep.txt") == b"keep"
    # The record: its hash, code digests, parameters, every output hashed by Balsam.
    answer = alice.client.get(f"/api/v1/projects/{project['id']}/runs/{run['id']}/record")
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == run["recordSha256"]
    record = answer.json()
    assert record["code"]["commit"] == sha
    assert record["code"]["files"]["flow/b.py"] == hashlib.sha256(files["flow/b.py"]).hexdigest()
    assert record["parameters"] == parameters
    (declared,) = record["inputs"]  # the object a parameter names, pinned by version
    assert declared["path"] == "main/keep.txt" and declared["versionId"]
    assert declared["sha256"] == hashlib.sha256(b"keep").hexdigest()
    assert record["environment"]["template"] == TEMPLATE
    assert record["environment"]["packages"]["nbclient"]
    by_id = {n["id"]: n for n in record["nodes"]}
    (published,) = by_id["b"]["published"]
    assert published["path"] == "main/flow/out/b.txt"
    assert published["sha256"] == hashlib.sha256(b"14+b7").hexdigest() and published["versionId"]
    kept = {o["path"].rsplit("/", 1)[1] for o in by_id["a"]["outputs"]}
    assert {"a.txt", "a.ipynb"} <= kept  # the output and the executed notebook
    executed = read(ctx, project, f"runs/{run['id']}/{_key(run, 'a')}/a.ipynb") or b""
    assert b"injected-parameters" in executed and b"n = 7" in executed
    # No secret anywhere, the key is revoked, the repository untouched.
    with ctx.sessions() as session:
        row = session.get(Run, run["id"])
        assert row is not None and row.access_key is None
    for text in (answer.text, executed.decode()):
        assert "AWS_SECRET" not in text and "secretKey" not in text
    assert ctx.providers.git.resolve_commit(project["id"], "main") == sha
    # Lineage: b.txt back to node b, its inputs (a's output, back to node a) and the
    # declared input; and the input's users.
    lineage = alice.client.get(f"/api/v1/projects/{project['id']}/data/main/flow/out/b.txt",
                               params={"lineage": "true"}).json()  # fmt: skip
    produced = lineage["producedBy"]
    assert (produced["runId"], produced["node"], produced["commit"]) == (run["id"], "b", sha)
    by_path = {i["path"]: i for i in lineage["inputs"]}
    assert by_path["main/keep.txt"]["versionId"] == declared["versionId"]
    upstream = by_path[f"runs/{run['id']}/{_key(run, 'a')}/outputs/flow/out/a.txt"]
    assert upstream["producedBy"]["node"] == "a"
    assert upstream["sha256"] == hashlib.sha256(b"14").hexdigest()
    assert [i["path"] for i in upstream["producedBy"]["inputs"]] == ["main/keep.txt"]
    used = alice.client.get(f"/api/v1/projects/{project['id']}/data/main/keep.txt",
                            params={"lineage": "true"}).json()  # fmt: skip
    assert used["producedBy"] is None and {"runId": run["id"], "node": ""} in used["usedBy"]
    refused = bob.client.get(f"/api/v1/projects/{project['id']}/data/main/keep.txt",
                             params={"lineage": "true"})  # fmt: skip
    assert refused.status_code == 404


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _key(run: dict[str, Any], node_id: str) -> str:
    position = [n["id"] for n in run["nodes"]].index(node_id)
    return f"{position + 1:02d}-{run['nodes'][position]['filename'].rsplit('/', 1)[1]}"


def test_a_failing_node_stops_its_descendants_and_publishes_nothing(
    alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    commit(
        ctx,
        project,
        {
            "f/bad.ipynb": notebook("x = 1", "raise ValueError('broken on purpose')"),
            "f/after.ipynb": notebook("open('after.txt', 'w').write('no')"),
            "f/ok.ipynb": notebook("open('ok.txt', 'w').write('ok')"),
            "f/p.pipeline": pipeline(
                node("bad", "bad.ipynb"),
                node("after", "after.ipynb", after=("bad",), outputs=("after.txt",)),
                node("ok", "ok.ipynb", outputs=("ok.txt",)),
            ),
        },
    )
    run = wait_ended(alice, project, start(alice, project, "f/p.pipeline")["id"])
    assert run["state"] == "failed"
    states = {n["id"]: n for n in run["nodes"]}
    assert states["bad"]["state"] == "failed"
    assert "ValueError: broken on purpose" in states["bad"]["error"]
    assert "(cell 2)" in states["bad"]["error"]
    assert states["after"]["state"] == "cancelled" and states["ok"]["state"] == "succeeded"
    assert read(ctx, project, "main/f/ok.txt") is None  # a failed run publishes nothing
    assert read(ctx, project, "main/f/after.txt") is None
    record = alice.client.get(f"/api/v1/projects/{project['id']}/runs/{run['id']}/record").json()
    assert record["run"]["state"] == "failed"


def test_only_members_run_and_see_runs(
    alice: TestUser, bob: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    commit(ctx, project, {"s.py": b"print(1)"})
    base = f"/api/v1/projects/{project['id']}/runs"
    body = {"branchId": "main", "path": "s.py", "template": TEMPLATE}
    assert bob.client.post(base, json=body).status_code == 404
    assert bob.client.get(base).status_code == 404
    run = start(alice, project, "s.py")
    assert bob.client.get(f"{base}/{run['id']}").status_code == 404
    assert bob.client.post(f"{base}/{run['id']}/cancel").status_code == 404
    assert bob.client.get(f"{base}/{run['id']}/record").status_code == 404
    listed = alice.client.get(base).json()
    assert listed["total"] >= 1 and listed["items"][0]["id"] == run["id"]
    assert wait_ended(alice, project, run["id"])["state"] == "succeeded"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"path": "missing.py"}, 422),
        ({"path": "notes.txt"}, 422),
        ({"commit": "0" * 40}, 422),
        ({"commit": "--upload-pack=x"}, 422),
        ({"branchId": "nope"}, 404),
        ({"parameters": {"not-a-name": 1}}, 422),
        ({"parameters": {"x": "y" * 70_000}}, 422),
        ({"template": "nope"}, 422),
        ({"extra": 1}, 422),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(
    alice: TestUser, project: dict[str, Any], ctx: AppContext, change: dict[str, Any], status: int
) -> None:
    commit(ctx, project, {"s.py": b"print(1)", "notes.txt": b"x"})
    body = {"branchId": "main", "path": "s.py", "template": TEMPLATE, **change}
    answer = alice.client.post(f"/api/v1/projects/{project['id']}/runs", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert alice.client.get(f"/api/v1/projects/{project['id']}/runs").json()["total"] == 0


def test_a_cancelled_run_stops_within_seconds_and_publishes_nothing(
    alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    slow = b"import time\nopen('slow.txt', 'w').write('x')\ntime.sleep(120)\n"
    commit(ctx, project, {"slow.py": slow, "p.pipeline": pipeline(
        node("s", "slow.py", op="execute-python-node", outputs=("slow.txt",)))})  # fmt: skip
    run = start(alice, project, "p.pipeline")
    base = f"/api/v1/projects/{project['id']}/runs/{run['id']}"
    deadline = time.monotonic() + START_TIMEOUT
    while alice.client.get(base).json()["nodes"][0]["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    asked = time.monotonic()
    assert alice.client.post(f"{base}/cancel").status_code == 200
    ended = wait_ended(alice, project, run["id"])
    assert ended["state"] == "cancelled" and ended["nodes"][0]["state"] in ("cancelled", "failed")
    assert time.monotonic() - asked < 15
    assert read(ctx, project, "main/slow.txt") is None


READ_SOURCE = b"""import boto3, json, os
source = json.loads(os.environ["BALSAM_PARAMETERS"])["source"]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
text = s3.get_object(Bucket=os.environ["BALSAM_BUCKET"], Key=source)["Body"].read().decode()
os.makedirs("out", exist_ok=True)
open("out/one.txt", "w").write(text.upper())
"""


def _rerun(user: TestUser, project: dict[str, Any], run_id: str, **body: Any) -> Any:
    return user.client.post(f"/api/v1/projects/{project['id']}/runs/{run_id}/rerun", json=body)


def _verdicts(user: TestUser, project: dict[str, Any], run_id: str) -> dict[str, str]:
    answer = user.client.get(f"/api/v1/projects/{project['id']}/runs/{run_id}/comparison")
    assert answer.status_code == 200, answer.text
    return {o["path"]: o["verdict"] for o in answer.json()["outputs"]}


def test_an_exact_rerun_reproduces_every_output_and_latest_inputs_says_what_differs(
    alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    objects = ctx.providers.storage.objects
    objects.put(project["bucket"], "main/in.txt", b"abc", content_type="text/plain", metadata={})
    commit(ctx, project, {
        "d/one.py": READ_SOURCE,
        "d/two.py": b"open('out/two.txt', 'w').write(open('out/one.txt').read() + '!')\n",
        "d/three.py": b"import os\nos.makedirs('out', exist_ok=True)\n"
                      b"open('out/three.txt', 'w').write('constant')\n",
        "d/p.pipeline": pipeline(
            node("one", "one.py", op="execute-python-node", outputs=("out/one.txt",)),
            node("two", "two.py", op="execute-python-node", after=("one",),
                 outputs=("out/two.txt",)),
            node("three", "three.py", op="execute-python-node", outputs=("out/three.txt",)),
        ),
    })  # fmt: skip
    source = {"source": "main/in.txt"}
    first = wait_ended(
        alice, project, start(alice, project, "d/p.pipeline", parameters=source)["id"]
    )
    assert first["state"] == "succeeded", first
    assert read(ctx, project, "main/d/out/two.txt") == b"ABC!"
    comparison = alice.client.get(f"/api/v1/projects/{project['id']}/runs/{first['id']}/comparison")
    assert comparison.status_code == 409  # not a re-run
    objects.put(project["bucket"], "main/in.txt", b"xyz", content_type="text/plain", metadata={})

    exact = _rerun(alice, project, first["id"], mode="exact")
    assert exact.status_code == 202, exact.text
    assert exact.json()["rerunOf"] == first["id"] and exact.json()["commit"] == first["commit"]
    assert wait_ended(alice, project, exact.json()["id"])["state"] == "succeeded"
    assert _verdicts(alice, project, exact.json()["id"]) == {
        "d/out/one.txt": "identical", "d/out/two.txt": "identical", "d/out/three.txt": "identical"
    }  # fmt: skip
    assert read(ctx, project, "main/d/out/two.txt") == b"ABC!"  # the old input's result again

    latest = _rerun(alice, project, first["id"], mode="latest-inputs")
    assert latest.status_code == 202, latest.text
    assert wait_ended(alice, project, latest.json()["id"])["state"] == "succeeded"
    assert _verdicts(alice, project, latest.json()["id"]) == {
        "d/out/one.txt": "differs", "d/out/two.txt": "differs", "d/out/three.txt": "identical"
    }  # fmt: skip
    assert read(ctx, project, "main/d/out/two.txt") == b"XYZ!"

    # Preconditions: an input version purged for good is named; other refusals.
    storage = ctx.providers.storage
    old = [v for v in storage.list_versions(project["bucket"], "main/in.txt") if not v.is_latest]
    storage.purge_versions(project["bucket"], old)
    refused = _rerun(alice, project, first["id"], mode="exact")
    assert refused.status_code == 409 and refused.json()["precondition"] == "input", refused.text
    assert "main/in.txt" in refused.json()["detail"]
    assert _rerun(alice, project, first["id"], mode="new-parameters").status_code == 422
    assert _rerun(alice, project, first["id"], mode="sideways").status_code == 422
    changed = _rerun(alice, project, first["id"], mode="new-parameters",
                     parameters={"source": "main/in.txt"})  # fmt: skip
    assert changed.status_code == 202
    wait_ended(alice, project, changed.json()["id"])


@pytest.fixture
def lineage_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on loopback that keeps what is POSTed to it (JSON)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []

    class Keep(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/lineage", received
    server.shutdown()


def test_openlineage_events_are_kept_with_the_run_and_sent(
    alice: TestUser,
    project: dict[str, Any],
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
    lineage_receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    import uuid

    from openlineage.client.event_v2 import RunState

    url, received = lineage_receiver
    monkeypatch.setattr(ctx.settings.runs, "openlineage_url", url)
    ctx.providers.storage.objects.put(project["bucket"], "main/src.txt", b"s",
                                      content_type="text/plain", metadata={})  # fmt: skip
    commit(ctx, project, {
        "ol/w.py": b"import os\nos.makedirs('o', exist_ok=True)\nopen('o/w.txt', 'w').write('w')\n",
        "ol/bad.py": b"raise SystemExit(2)\n",
        "ol/p.pipeline": pipeline(
            node("w", "w.py", op="execute-python-node", outputs=("o/w.txt",)),
            node("bad", "bad.py", op="execute-python-node", after=("w",)),
        ),
    })  # fmt: skip
    run = wait_ended(alice, project, start(alice, project, "ol/p.pipeline",
                                           parameters={"src": "main/src.txt"})["id"])  # fmt: skip
    assert run["state"] == "failed"
    answer = alice.client.get(f"/api/v1/projects/{project['id']}/runs/{run['id']}/openlineage")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-ndjson"
    kept = [json.loads(line) for line in answer.text.splitlines()]
    deadline = time.monotonic() + 30  # sent once the run has ended and its record is kept
    while len(received) < len(kept) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kept == received  # the same events, sent one by one
    kinds = [(e["job"]["name"], e["eventType"]) for e in kept]
    assert kinds == [
        ("ol/p.pipeline", "START"), ("ol/p.pipeline/w", "START"), ("ol/p.pipeline/w", "COMPLETE"),
        ("ol/p.pipeline/bad", "START"), ("ol/p.pipeline/bad", "FAIL"), ("ol/p.pipeline", "FAIL"),
    ]  # fmt: skip
    states = {s.value for s in RunState}
    for event in kept:  # what the 2-0-2 spec requires of every run event
        assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
        assert event["eventType"] in states and event["producer"] and event["eventTime"]
        assert (
            uuid.UUID(event["run"]["runId"])
            and event["job"]["namespace"] == f"balsam:{project['id']}"
        )
    (declared,) = kept[0]["inputs"]
    assert (
        declared["namespace"] == f"s3://{project['bucket']}" and declared["name"] == "main/src.txt"
    )
    assert declared["facets"]["version"]["datasetVersion"]
    parent = kept[1]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == kept[0]["run"]["runId"]
    written = [o["name"] for o in kept[2]["outputs"]]
    assert any(name.endswith("/outputs/ol/o/w.txt") for name in written), written
    assert "exited with status 2" in kept[4]["run"]["facets"]["errorMessage"]["message"]


def test_a_killed_kernel_fails_its_node_within_seconds(
    alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    cells = ("import os, signal", "os.kill(os.getpid(), signal.SIGKILL)", "print('never')")
    commit(ctx, project, {"k.ipynb": notebook(*cells)})
    run = wait_ended(alice, project, start(alice, project, "k.ipynb")["id"])
    (only,) = run["nodes"]
    assert run["state"] == "failed" and only["state"] == "failed"
    assert "kernel died" in only["error"].lower(), only["error"]
    took = datetime.fromisoformat(only["endedAt"]) - datetime.fromisoformat(only["startedAt"])
    assert took.total_seconds() < 10, took


def test_runs_results_are_read_only_and_runs_is_no_branch_name(
    alice: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    pid = project["id"]
    ctx.providers.storage.objects.put(project["bucket"], "runs/x/kept.txt", b"k",
                                      content_type="text/plain", metadata={})  # fmt: skip
    assert (
        alice.client.put(f"/api/v1/projects/{pid}/data/runs/x/new.txt", content=b"n").status_code
        == 422
    )
    assert alice.client.delete(f"/api/v1/projects/{pid}/data/runs/x/kept.txt").status_code == 422
    moved = alice.client.post(
        f"/api/v1/projects/{pid}/data/main/readme.txt/move", json={"to": "runs/y.txt"}
    )
    assert moved.status_code == 422
    started = alice.client.post(
        f"/api/v1/projects/{pid}/data/uploads", json={"path": "runs/u", "size": 3}
    )
    assert started.status_code == 422
    assert read(ctx, project, "runs/x/kept.txt") == b"k"
    for name in ("runs", "tmp"):
        branch = alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": name})
        assert branch.status_code == 422 and "reserved" in branch.json()["detail"], branch.text


def test_parameters_must_be_json_and_runs_end_at_their_time_limit(
    alice: TestUser, project: dict[str, Any], ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(ctx, project, {"slow.py": b"import time\ntime.sleep(300)\n"})
    base = f"/api/v1/projects/{project['id']}/runs"
    for raw in ('{"a": NaN}', '{"a": Infinity}', '{"a": "\\ud800"}'):
        body = f'{{"branchId": "main", "path": "slow.py", "parameters": {raw}}}'
        answer = alice.client.post(base, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, (raw, answer.text)
    monkeypatch.setattr(ctx.settings.runs, "max_seconds", 10)
    run = wait_ended(alice, project, start(alice, project, "slow.py")["id"])
    assert run["state"] == "failed" and "took longer than 10 s" in run["error"], run


def test_publishing_keeps_to_the_storage_quota(
    alice: TestUser, admin: TestUser, project: dict[str, Any], ctx: AppContext
) -> None:
    answer = admin.client.patch(
        f"/api/v1/projects/{project['id']}", json={"storageQuotaBytes": 100_000}
    )
    assert answer.status_code == 200, answer.text
    big = (
        b"import os\nos.makedirs('o', exist_ok=True)\n"
        + b"open('o/big.bin', 'wb').write(b'x' * 200_000)\n"
    )
    flow = pipeline(node("b", "big.py", op="execute-python-node", outputs=("o/big.bin",)))
    commit(ctx, project, {"big.py": big, "q.pipeline": flow})
    run = wait_ended(alice, project, start(alice, project, "q.pipeline")["id"])
    assert run["state"] == "failed" and "quota" in run["error"], run
    assert read(ctx, project, "main/o/big.bin") is None  # nothing published
