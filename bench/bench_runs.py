"""Recorded runs (issue 14): node concurrency, and the runner's overhead per node.

One platform (``_platform.platform(workspaces=True)``: SeaweedFS, the app under
uvicorn, the real local workspace provider; as root each run gets a uid of its own),
one project whose repository holds, committed through the git provider as the runs
tests do (``tests.web.runs.test_runs.notebook``, ``tests.domain.runs.test_plan.pipeline``
and ``node``):

* ``par/p.pipeline``: ``--nodes`` (8) independent one-cell Python notebooks (``x = 1``);
* ``chain/p.pipeline``: ``--chain`` (20) such notebooks, each linked to the previous.

Every run is ``POST /api/v1/projects/{id}/runs`` (template ``python``, its environment
already built under ``.cache/environments``), then ``GET .../runs/{runId}`` every 0.1 s
until it has ended; it must end ``succeeded``. The app is served without its lifespan,
so no RunWorker runs: the POST's own background task claims and runs the run right
after the response (``web/api/v1/common.wake_worker``), in the app's process, as the
worker thread would. Times are taken from the run row (``startedAt`` → ``endedAt``:
claim, key, checkout, runner, hashing, record) and its nodes' rows (``startedAt`` when
the runner said the node started, ``endedAt`` when it said it ended: the node's own
process, its kernel, the notebook, the upload of the executed notebook); the client's
POST → ended time (0.1 s polling) is printed beside them. One untimed run of a single
notebook warms caches first.

1. Concurrency: ``par/p.pipeline`` run with ``runs.node_concurrency`` = 1 and = 2 (set
   on the running app's settings, ``ctx.settings.runs``, before each POST; the runner
   reads it when the run starts), ``--rounds`` (3) of each, alternating which goes
   first. Prints each run's wall time, the medians and the ratio serial/concurrent
   (the issue's target: >= 1.8 on a 2-core machine).
2. Overhead per node: ``chain/p.pipeline`` as one run, against a baseline that executes
   the same notebooks one after another in one process with nbclient
   (``NotebookClient(nb, kernel_name="python3").execute()``: a fresh kernel per
   notebook, TCP transport, read and write of the notebook included), run by the
   template environment's own Python in a subprocess (imports not timed);
   ``--chain-rounds`` (3) of each, alternating. Prints per-node overhead =
   (run wall - baseline wall) / N from the medians, the p50 and p95 of node durations
   (run) and notebook durations (baseline) over all rounds, their difference paired
   by position, the gaps between one node's end and the next one's start, and the
   run's fixed cost (its wall time less its nodes' span). Targets: overhead p50 <=
   150 ms, p95 <= 300 ms per node.
3. Informational, to explain part 2: what a node's own process pays before it runs
   anything, ``--imports`` (5) times: ``python -I`` of the environment importing what
   ``balsam_runner.py --node`` imports for a notebook (nbformat, nbclient,
   jupyter_client's KernelManager), and of that ``rfc3987_syntax`` alone (jsonschema
   imports it for its format checkers when it is installed; it builds a parser when
   imported). The baseline pays these imports once, untimed; a run, once per node.

No timed assertion; a JSON line at the end. Numbers are noisy on a small, shared
machine: run it alone where possible, and read the per-round figures, not just the
medians.

    .venv/bin/python bench/bench_runs.py [--rounds 3] [--chain-rounds 3] [--nodes 8] [--chain 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _platform import median, percentile, platform

from balsam.providers.git.base import Author
from tests.domain.runs.test_plan import node, pipeline
from tests.web.runs.test_runs import notebook

TEMPLATE = "python"
POLL = 0.1
TIMEOUT = 900.0
TARGET_RATIO = 1.8
TARGET_P50_MS, TARGET_P95_MS = 150, 300
AUTHOR = Author("Bench", "bench@example.org")
CELL = "x = 1"

#: Run by the environment's Python: execute the notebooks named, one after another.
BASELINE = """
import json, os, sys, time
import nbformat
from nbclient import NotebookClient
from jupyter_client.manager import KernelManager  # noqa: F401 - imported before timing

folder, names = sys.argv[1], sys.argv[2:]
times = []
t0 = time.perf_counter()
for name in names:
    start = time.perf_counter()
    nb = nbformat.read(os.path.join(folder, name), as_version=4)
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()
    nbformat.write(nb, os.path.join(folder, "executed-" + name))
    times.append(time.perf_counter() - start)
print(json.dumps({"total": time.perf_counter() - t0, "notebooks": times}))
"""

#: Run by the environment's Python (``-I``, as a node's process): its imports, timed.
IMPORTS = """
import json, time
t0 = time.perf_counter()
import rfc3987_syntax  # noqa: F401
t1 = time.perf_counter()
import nbformat  # noqa: F401
from jupyter_client.manager import KernelManager  # noqa: F401
from nbclient import NotebookClient  # noqa: F401
print(json.dumps({"rfc3987_syntax": t1 - t0, "all": time.perf_counter() - t0}))
"""


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _s(a: str, b: str) -> float:
    return (_t(b) - _t(a)).total_seconds()


def run_once(client: httpx.Client, project_id: str, path: str) -> dict[str, Any]:
    """POST a run, poll until it ends; the run's body plus ``client_s`` (POST → ended)."""
    start = time.perf_counter()
    r = client.post(
        f"/api/v1/projects/{project_id}/runs",
        json={"branchId": "main", "path": path, "template": TEMPLATE},
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    while True:
        body: dict[str, Any] = client.get(f"/api/v1/projects/{project_id}/runs/{run_id}").json()
        if body["state"] in ("succeeded", "failed", "cancelled"):
            break
        if time.perf_counter() - start > TIMEOUT:
            raise RuntimeError(f"run {run_id} did not end within {TIMEOUT:.0f} s: {body}")
        time.sleep(POLL)
    body["client_s"] = time.perf_counter() - start
    if body["state"] != "succeeded":
        errors = [(n["label"], n["state"], n["error"]) for n in body["nodes"] if n["error"]]
        raise RuntimeError(f"run {run_id} ended {body['state']}: {body['error']} {errors}")
    return body


def wall(run: dict[str, Any]) -> float:
    return _s(run["startedAt"], run["endedAt"])


def node_times(run: dict[str, Any]) -> dict[str, Any]:
    """Node durations in plan order, gaps from one node's end to the next one's start
    (a chain), and the span from the first node's start to the last node's end."""
    nodes = sorted(run["nodes"], key=lambda n: n["startedAt"])
    durations = [_s(n["startedAt"], n["endedAt"]) for n in run["nodes"]]
    gaps = [_s(a["endedAt"], b["startedAt"]) for a, b in itertools.pairwise(nodes)]
    span = _s(nodes[0]["startedAt"], max(n["endedAt"] for n in nodes))
    return {"durations": durations, "gaps": gaps, "span": span}


def environ(python: Path, folder: Path) -> dict[str, str]:
    return {
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(python.parent.parent),
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "PYTHONDONTWRITEBYTECODE": "1",  # the shared environment is left as it is
    }


def baseline(python: Path, folder: Path, names: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", BASELINE, str(folder), *names],
        env=environ(python, folder),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the baseline failed:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["process_s"] = time.perf_counter() - start
    return found


def imports(python: Path, folder: Path) -> dict[str, float]:
    done = subprocess.run(
        [str(python), "-I", "-c", IMPORTS],
        env=environ(python, folder),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the imports failed:\n{done.stderr[-3000:]}")
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each concurrency")
    parser.add_argument("--chain-rounds", type=int, default=3, help="chain runs and baselines")
    parser.add_argument("--nodes", type=int, default=8, help="independent notebooks")
    parser.add_argument("--chain", type=int, default=20, help="notebooks in the chain")
    parser.add_argument("--imports", type=int, default=5, help="timings of a node's imports")
    args = parser.parse_args()

    par = {f"par/n{i:02d}.ipynb": notebook(CELL) for i in range(1, args.nodes + 1)}
    chain_names = [f"c{i:02d}.ipynb" for i in range(1, args.chain + 1)]
    files: dict[str, bytes] = {
        **par,
        "par/p.pipeline": pipeline(
            *(node(f"n{i:02d}", f"n{i:02d}.ipynb") for i in range(1, args.nodes + 1))
        ),
        **{f"chain/{name}": notebook(CELL) for name in chain_names},
        "chain/p.pipeline": pipeline(
            *(
                node(f"c{i:02d}", f"c{i:02d}.ipynb", after=(f"c{i - 1:02d}",) if i > 1 else ())
                for i in range(1, args.chain + 1)
            )
        ),
    }
    print(f"cores: {os.cpu_count()}, load average at start: {load()}", flush=True)

    with (
        platform(workspaces=True) as p,
        httpx.Client(base_url=p.url, headers=p.headers, timeout=60) as client,
        tempfile.TemporaryDirectory(prefix="bench-runs-baseline-") as scratch,
    ):
        t0 = time.perf_counter()
        env_path = p.ctx.providers.workspaces.environments.ensure(  # type: ignore[attr-defined]
            p.ctx.templates[TEMPLATE].environment, lambda m: print(m, flush=True)
        )
        print(f"environment {env_path} ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        r = client.post("/api/v1/projects", json={"name": "Runs bench", "branchName": "main"})
        assert r.status_code == 201, r.text
        project_id = r.json()["id"]
        p.ctx.providers.git.commit_files(project_id, "main", files, message="bench",
                                         author=AUTHOR)  # fmt: skip
        folder = Path(scratch)
        for name in chain_names:
            (folder / name).write_bytes(files[f"chain/{name}"])
        python = env_path / "bin" / "python"
        settings = p.ctx.settings.runs

        warm = run_once(client, project_id, "par/n01.ipynb")  # untimed: caches, first imports
        print(f"warm-up run (1 notebook): {wall(warm):.2f} s", flush=True)
        warm_base = baseline(python, folder, chain_names[:1])
        print(f"warm-up baseline (1 notebook): {warm_base['total']:.2f} s", flush=True)

        # -- 1. concurrency ---------------------------------------------------------------
        print(f"\n1. {args.nodes} independent notebooks, node_concurrency 1 vs 2", flush=True)
        conc: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for i in range(args.rounds):
            for n in (1, 2) if i % 2 == 0 else (2, 1):
                settings.node_concurrency = n
                conc[n].append(run_once(client, project_id, "par/p.pipeline"))
            print(f"round {i + 1}: " + ", ".join(
                f"concurrency {n} {wall(conc[n][-1]):.2f} s (POST→ended "
                f"{conc[n][-1]['client_s']:.2f} s)" for n in (1, 2)
            ) + f"; load {load()}", flush=True)  # fmt: skip
        settings.node_concurrency = 0

        # -- 2. overhead per node ----------------------------------------------------------
        print(f"\n2. a chain of {args.chain} notebooks: one run vs nbclient in one process",
              flush=True)  # fmt: skip
        chain_runs: list[dict[str, Any]] = []
        bases: list[dict[str, Any]] = []
        for i in range(args.chain_rounds):
            for side in ("run", "baseline") if i % 2 == 0 else ("baseline", "run"):
                if side == "run":
                    chain_runs.append(run_once(client, project_id, "chain/p.pipeline"))
                else:
                    bases.append(baseline(python, folder, chain_names))
            print(
                f"round {i + 1}: run {wall(chain_runs[-1]):.2f} s (POST→ended "
                f"{chain_runs[-1]['client_s']:.2f} s), baseline {bases[-1]['total']:.2f} s "
                f"(process {bases[-1]['process_s']:.2f} s); load {load()}",
                flush=True,
            )

        # -- 3. a node process's imports ---------------------------------------------------
        imported = [imports(python, folder) for _ in range(args.imports)]

    # -- results ------------------------------------------------------------------------
    walls = {n: [wall(r) for r in runs] for n, runs in conc.items()}
    clients = {n: [r["client_s"] for r in runs] for n, runs in conc.items()}
    med = {n: median(v) for n, v in walls.items()}
    ratio = med[1] / med[2]
    client_ratio = median(clients[1]) / median(clients[2])
    spans = {n: median([node_times(r)["span"] for r in runs]) for n, runs in conc.items()}
    conc_nodes = {n: [d for r in runs for d in node_times(r)["durations"]]
                  for n, runs in conc.items()}  # fmt: skip

    run_walls = [wall(r) for r in chain_runs]
    base_walls = [b["total"] for b in bases]
    times = [node_times(r) for r in chain_runs]
    durations = [d for t in times for d in t["durations"]]
    gaps = [g for t in times for g in t["gaps"]]
    notebooks = [d for b in bases for d in b["notebooks"]]
    paired = [
        d - b
        for t, base in zip(times, bases, strict=True)
        for d, b in zip(t["durations"], base["notebooks"], strict=True)
    ]
    fixed = [w - t["span"] for w, t in zip(run_walls, times, strict=True)]
    overhead = (median(run_walls) - median(base_walls)) / args.chain

    print()
    print(f"1. {args.nodes} independent notebooks        median    runs (startedAt→endedAt)")
    for n in (1, 2):
        print(f"   node_concurrency={n}               {med[n]:6.2f} s   "
              + " ".join(f"{v:.2f}" for v in walls[n]))  # fmt: skip
    for n in (1, 2):
        print(f"   concurrency {n}: POST→ended median {median(clients[n]):.2f} s, nodes' span "
              f"{spans[n]:.2f} s, node p50 {ms(percentile(conc_nodes[n], 50))}, "
              f"p95 {ms(percentile(conc_nodes[n], 95))}")  # fmt: skip
    print(f"   serial/concurrent {ratio:.2f}  (POST→ended: {client_ratio:.2f}; "
          f"nodes' span: {spans[1] / spans[2]:.2f}; target >= {TARGET_RATIO})")  # fmt: skip
    print()
    print(f"2. chain of {args.chain} notebooks         median    runs")
    print(f"   recorded run (startedAt→endedAt) {median(run_walls):6.2f} s   "
          + " ".join(f"{v:.2f}" for v in run_walls))  # fmt: skip
    print(f"   nbclient in one process          {median(base_walls):6.2f} s   "
          + " ".join(f"{v:.2f}" for v in base_walls))  # fmt: skip
    print(f"   overhead per node (wall)         {ms(overhead)}  "
          f"(target p50 <= {TARGET_P50_MS} ms, p95 <= {TARGET_P95_MS} ms)")  # fmt: skip
    print(f"   node durations (run)             p50 {ms(percentile(durations, 50))}, "
          f"p95 {ms(percentile(durations, 95))}  ({len(durations)} nodes)")  # fmt: skip
    print(f"   notebook durations (baseline)    p50 {ms(percentile(notebooks, 50))}, "
          f"p95 {ms(percentile(notebooks, 95))}  ({len(notebooks)} notebooks)")  # fmt: skip
    print(f"   node - notebook (paired)         p50 {ms(percentile(paired, 50))}, "
          f"p95 {ms(percentile(paired, 95))}")  # fmt: skip
    print(f"   gap between nodes                p50 {ms(percentile(gaps, 50))}, "
          f"p95 {ms(percentile(gaps, 95))}")  # fmt: skip
    print(f"   run's fixed cost (wall - span)   median {median(fixed):.2f} s   "
          + " ".join(f"{v:.2f}" for v in fixed))  # fmt: skip
    import_all = [i["all"] for i in imported]
    import_rfc = [i["rfc3987_syntax"] for i in imported]
    print()
    print(f"3. a node process's imports         median {ms(median(import_all))}   "
          + " ".join(ms(v) for v in import_all))  # fmt: skip
    print(f"   of which rfc3987_syntax          median {ms(median(import_rfc))}   "
          + " ".join(ms(v) for v in import_rfc))  # fmt: skip
    print(f"   load average at end: {load()}")
    result = {
        "bench": "runs",
        "cores": os.cpu_count(),
        "nodes": args.nodes,
        "rounds": args.rounds,
        "serial_s": [round(v, 2) for v in walls[1]],
        "concurrent_s": [round(v, 2) for v in walls[2]],
        "serial_median_s": round(med[1], 2),
        "concurrent_median_s": round(med[2], 2),
        "ratio_serial_concurrent": round(ratio, 2),
        "target_ratio": f">= {TARGET_RATIO}",
        "chain": args.chain,
        "chain_rounds": args.chain_rounds,
        "chain_run_s": [round(v, 2) for v in run_walls],
        "baseline_s": [round(v, 2) for v in base_walls],
        "overhead_per_node_ms": round(overhead * 1000),
        "node_p50_ms": round(percentile(durations, 50) * 1000),
        "node_p95_ms": round(percentile(durations, 95) * 1000),
        "notebook_p50_ms": round(percentile(notebooks, 50) * 1000),
        "notebook_p95_ms": round(percentile(notebooks, 95) * 1000),
        "paired_overhead_p50_ms": round(percentile(paired, 50) * 1000),
        "paired_overhead_p95_ms": round(percentile(paired, 95) * 1000),
        "gap_p50_ms": round(percentile(gaps, 50) * 1000),
        "gap_p95_ms": round(percentile(gaps, 95) * 1000),
        "fixed_cost_median_s": round(median(fixed), 2),
        "target_overhead_ms": f"p50 <= {TARGET_P50_MS}, p95 <= {TARGET_P95_MS}",
        "node_imports_median_ms": round(median(import_all) * 1000),
        "rfc3987_syntax_import_median_ms": round(median(import_rfc) * 1000),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
