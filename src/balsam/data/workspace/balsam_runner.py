"""Balsam's runner: runs one recorded run's nodes, inside the run's environment.

Started by Balsam (``balsam.providers.workspaces.local_runs``) with the template environment's
Python, as the run's own user, in a scratch checkout of the run's commit; never by
hand. It reads the plan Balsam wrote (``plan.json``) and:

* runs each node in a process of its own (``--node``): a notebook through nbclient
  with the run's parameters injected after the cell tagged ``parameters`` (as papermill
  does: a cell tagged ``injected-parameters``; Python and R), a script with its
  interpreter (``python`` or ``Rscript``), both in the file's own folder;
* runs nodes whose parents have succeeded side by side, at most ``concurrency`` at
  once; a failed node's descendants do not run;
* uploads, with the run's key (it writes only under ``runs/<run>/``), each node's
  executed notebook or log and, after success, its declared outputs to
  ``runs/<run>/<node key>/``;
* tells Balsam what happens as JSON lines on its standard output (one object per
  event). Nothing the user's code runs can write to that stream: each node's process
  (and its kernel) writes to the node's log file, and this process is not dumpable, so
  code of the same user cannot open its descriptors through /proc or trace it.

Only the standard library, nbclient/nbformat (notebooks) and boto3 (uploads) are used:
every template has them.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any

_emit_lock = threading.Lock()
#: Where a node's executed notebook and log are written (beside the checkout).
RESULTS = Path(os.environ.get("BALSAM_RUN_RESULTS", "../results"))


def emit(**event: Any) -> None:
    with _emit_lock:
        sys.stdout.write(json.dumps(event, ensure_ascii=True) + "\n")
        sys.stdout.flush()


# -- parameters -----------------------------------------------------------------------


def python_literal(value: Any) -> str:
    return repr(value)


def r_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid R string literal
    if isinstance(value, list):
        return "list(" + ", ".join(r_literal(v) for v in value) + ")"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {r_literal(v)}" for k, v in value.items())
        return f"list({items})"
    return json.dumps(str(value))


def inject(nb: Any, parameters: dict[str, Any], language: str) -> None:
    """Add a cell tagged ``injected-parameters`` after the one tagged ``parameters``
    (at the top if there is none), as papermill does."""
    import nbformat

    if not parameters:
        return
    literal = r_literal if language == "r" else python_literal
    lines = ["# Parameters of this run (injected by Balsam)"]
    lines += [f"{name} = {literal(value)}" for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    at = 0
    for index, existing in enumerate(nb.cells):
        if "parameters" in (existing.get("metadata", {}).get("tags") or []):
            at = index + 1
            break
    nb.cells.insert(at, cell)


# -- one node, in its own process --------------------------------------------------------


def run_node(plan: dict[str, Any], node: dict[str, Any]) -> int:
    """Run one node; 0 on success. Writes ``<results>/<key>/error.json`` on failure."""
    out = RESULTS / node["key"]
    out.mkdir(parents=True, exist_ok=True)
    source = Path(node["filename"])
    env = {**os.environ, **node.get("env", {})}
    env["BALSAM_PARAMETERS"] = json.dumps(plan.get("parameters") or {})
    if node["kind"] == "notebook":
        return _notebook(plan, node, source, out)
    command = (
        [sys.executable, "-I", source.name]
        if node["kind"] == "python"
        else ["Rscript", source.name]
    )
    with open(out / "log.txt", "wb") as log:
        done = subprocess.run(
            command, cwd=source.parent, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        _fail(out, f"{source.name} exited with status {done.returncode}.", None)
    return done.returncode


def _notebook(plan: dict[str, Any], node: dict[str, Any], source: Path, out: Path) -> int:
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
    from traitlets.config import Config

    nb = nbformat.read(source, as_version=4)
    spec = nb.metadata.get("kernelspec") or {}
    language = str(spec.get("language") or "python").lower()
    kernel = "ir" if language == "r" or spec.get("name") == "ir" else "python3"
    inject(nb, plan.get("parameters") or {}, "r" if kernel == "ir" else "python")
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    name = f"kernel-{uuid.uuid4()}"
    # The kernel's channels are unix sockets in the run's private runtime folder: no
    # TCP port on the host.
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.connection_file = str(runtime / f"{name}.json")
    config.KernelManager.ip = str(runtime / f"{name}-ipc")
    os.environ.update(node.get("env", {}))
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        kernel_manager_class=AsyncKernelManager,
        config=config,
        timeout=None,
        allow_errors=False,
        resources={"metadata": {"path": str(source.parent.resolve())}},
    )
    code = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        code = 1
        _fail(out, f"{exc.ename}: {exc.evalue}", _failing_cell(nb))
    except DeadKernelError as exc:
        code = 1
        _fail(out, f"The kernel died: {exc}", _running_cell(nb))
    finally:
        nbformat.write(nb, out / source.name)
    return code


def _running_cell(nb: Any) -> int | None:
    """The cell the kernel was running when it died: the last one it began."""
    began = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"
             and c.get("execution_count") is not None]  # fmt: skip
    return began[-1] if began else None


def _failing_cell(nb: Any) -> int | None:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index
    return None


def _fail(out: Path, message: str, cell: int | None) -> None:
    (out / "error.json").write_text(json.dumps({"error": message[-2000:], "cell": cell}))


# -- the whole run ------------------------------------------------------------------------


class Uploader:
    def __init__(self, plan: dict[str, Any]) -> None:
        import boto3

        self.bucket, self.prefix = plan["bucket"], plan["prefix"]
        self.s3 = boto3.client(
            "s3",
            endpoint_url=plan["endpoint"],
            region_name=plan.get("region") or "us-east-1",
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        )

    def put(self, key: str, path: Path) -> None:
        self.s3.upload_file(str(path), self.bucket, self.prefix + key)


def run(plan_file: str) -> int:
    plan = json.loads(Path(plan_file).read_text())
    nodes = {n["id"]: n for n in plan["nodes"]}
    uploader = Uploader(plan)
    state: dict[str, str] = {}
    lock = threading.Lock()
    started: dict[str, concurrent.futures.Future[int]] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(plan["concurrency"])))

    def node_process(node_id: str) -> int:
        node = nodes[node_id]
        emit(event="node", id=node_id, state="running")
        out = RESULTS / node["key"]
        out.mkdir(parents=True, exist_ok=True)
        # The node (and its kernel, and whatever they start) writes to its own log, never
        # to this process's standard output: that is the event stream Balsam reads.
        with open(out / "node.log", "wb") as log:
            proc = subprocess.run(
                [sys.executable, "-I", __file__, "--node", plan_file, node_id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        ok = proc.returncode == 0
        error = None
        if not ok:
            try:
                error = json.loads((out / "error.json").read_text())
            except (OSError, ValueError):
                error = {"error": f"The node's process ended with status {proc.returncode}."}
        try:
            for item in sorted(out.glob("*")) if out.is_dir() else []:
                if item.is_file() and item.name != "error.json":
                    uploader.put(f"{node['key']}/{item.name}", item)
            for output in node["outputs"] if ok else []:
                path = Path(output)
                if not path.is_file():
                    ok, error = False, {"error": f"The declared output {output} was not written."}
                    break
                uploader.put(f"{node['key']}/outputs/{output}", path)
        except Exception as exc:
            ok, error = False, {"error": f"Uploading the results failed: {exc}"}
        emit(event="node", id=node_id, state="succeeded" if ok else "failed", **(error or {}))
        return 0 if ok else 1

    def schedule() -> None:
        with lock:
            for node_id, node in nodes.items():
                if node_id in started or node_id in state:
                    continue
                parents = [state.get(p) for p in node["parents"]]
                if any(p in ("failed", "cancelled") for p in parents):
                    state[node_id] = "cancelled"
                    emit(event="node", id=node_id, state="cancelled",
                         error="A node it depends on failed.")  # fmt: skip
                elif all(p == "succeeded" for p in parents):
                    started[node_id] = pool.submit(node_process, node_id)

    schedule()
    while len(state) < len(nodes):
        pending = [f for n, f in started.items() if n not in state]
        if not pending:
            schedule()
            continue
        done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        with lock:
            for node_id, future in started.items():
                if future in done and node_id not in state:
                    state[node_id] = "succeeded" if future.result() == 0 else "failed"
        schedule()
    pool.shutdown()
    failed = any(s != "succeeded" for s in state.values())
    emit(event="run", state="failed" if failed else "succeeded")
    return 1 if failed else 0


def not_dumpable() -> None:
    """Make this process's /proc entries root's (PR_SET_DUMPABLE 0): the nodes' code runs
    as the same user and must not reach its standard output (the events) through
    /proc/<pid>/fd, nor trace it."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def main() -> int:
    try:
        if sys.argv[1] == "--node":
            plan = json.loads(Path(sys.argv[2]).read_text())
            node = next(n for n in plan["nodes"] if n["id"] == sys.argv[3])
            return run_node(plan, node)
        not_dumpable()
        return run(sys.argv[1])
    except Exception:
        emit(event="crash", error=traceback.format_exc()[-2000:])
        return 2


if __name__ == "__main__":
    # jsonschema (under nbformat) imports rfc3987_syntax for its URI format checks when
    # it is installed (jupyter-events wants it), and that builds a parser at import: ~1 s
    # of CPU in every node's process. Notebook validation checks no URI formats, and
    # jsonschema goes on without it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    sys.exit(main())
