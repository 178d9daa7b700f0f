"""Workspace proxy overhead: one running workspace, the same URLs through Balsam's
proxy (``/workspaces/<id>/...`` with the user's Bearer token) and directly to
its JupyterLab port (the server's own token), side by side.

* small requests: 200 sequential ``GET api/status`` and 200 ``GET api/contents``
  each way, one keep-alive client per side; a few repetitions, interleaved;
  median and p95 latency per request.
* a 20 MB file download (``GET files/<name>``; the file is written into the
  workspace's home on disk as the workspace's user), a few repetitions,
  interleaved; median time and MB/s.

The requests come from a separate client process (as a browser's would): a client
thread in the server's own process would share its GIL and slow the proxy side.

Prints medians and ratios proxy/direct (target <= 1.5), then a JSON line.

    .venv/bin/python bench/bench_workspace_proxy.py [--requests 200] [--reps 3] [--downloads 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _platform import Platform, median, percentile, platform

SIZE = 20 * 1024 * 1024
FILE = "bench-20mb.bin"


def start_workspace(p: Platform, client: httpx.Client) -> str:
    r = client.post("/api/v1/projects", json={"name": "Proxy bench", "description": "",
                                              "branchName": "main"})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/workspaces", json={
        "name": "Proxy bench", "templateId": "python", "projectId": r.json()["id"],
        "branchId": "main"})
    assert r.status_code == 201, r.text
    wid: str = r.json()["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/workspaces/{wid}").json()
        if body["state"] == "running":
            return wid
        if body["state"] == "failed":
            raise RuntimeError(f"workspace failed: {body['stateReason']}")
        time.sleep(0.2)
    raise RuntimeError("workspace did not start")


def write_file(p: Platform, wid: str) -> None:
    """A 20 MB file in the workspace's home, owned by the workspace's user."""
    folder: Path = p.ctx.providers.workspaces.root / wid  # type: ignore[attr-defined]
    target = folder / "home" / FILE
    target.write_bytes(os.urandom(SIZE))
    target.chmod(0o600)
    uid_file = folder / "uid"
    if uid_file.exists():
        uid = int(uid_file.read_text())
        os.chown(target, uid, uid)


def small(client: httpx.Client, url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
    return times


def download(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    size = 0
    with client.stream("GET", url) as r:
        assert r.status_code == 200, (url, r.status_code)
        for chunk in r.iter_raw():
            size += len(chunk)
    elapsed = time.perf_counter() - start
    assert size == SIZE, size
    return elapsed


def measure(cfg: dict[str, object]) -> dict[str, object]:
    """The client process: every measurement, both sides; raw seconds back as JSON."""
    sides: dict[str, list[object]] = cfg["sides"]  # type: ignore[assignment]
    clients = {side: httpx.Client(base_url=str(base), headers=dict(headers),  # type: ignore[call-overload]
                                  timeout=60) for side, (base, headers) in sides.items()}
    n, reps, downloads = int(cfg["requests"]), int(cfg["reps"]), int(cfg["downloads"])  # type: ignore[call-overload]
    lat: dict[str, dict[str, list[float]]] = {
        path: {side: [] for side in clients} for path in PATHS}
    dl: dict[str, list[float]] = {side: [] for side in clients}
    try:
        for client in clients.values():  # warm-up: connections, caches
            for path in PATHS:
                small(client, path, 20)
            download(client, f"files/{FILE}")
        for rep in range(reps):  # interleaved, alternating which side goes first
            order = list(clients) if rep % 2 == 0 else list(clients)[::-1]
            for path in PATHS:
                for side in order:
                    lat[path][side] += small(clients[side], path, n)
        for rep in range(downloads):
            for side in (list(clients) if rep % 2 == 0 else list(clients)[::-1]):
                dl[side].append(download(clients[side], f"files/{FILE}"))
    finally:
        for client in clients.values():
            client.close()
    return {"latency": lat, "download": dl}


PATHS = ["api/status", "api/contents"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--downloads", type=int, default=7)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the client process
    args = parser.parse_args()
    if args.client:
        print(json.dumps(measure(json.loads(args.client))))
        return

    with platform(workspaces=True) as p, \
            httpx.Client(base_url=p.url, headers=p.headers, timeout=60) as api:
        wid = start_workspace(p, api)
        endpoint = p.ctx.providers.workspaces.endpoint(wid)
        assert endpoint is not None
        write_file(p, wid)
        cfg = {"requests": args.requests, "reps": args.reps, "downloads": args.downloads,
               "sides": {"proxy": [f"{p.url}/workspaces/{wid}/", p.headers],
                         "direct": [endpoint.url,
                                    {"Authorization": f"token {endpoint.token}"}]}}
        done = subprocess.run([sys.executable, __file__, "--client", json.dumps(cfg)],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise SystemExit(f"client failed:\n{done.stderr[-3000:]}")
        raw = json.loads(done.stdout.strip().splitlines()[-1])
    lat, dl = raw["latency"], raw["download"]

    result: dict[str, object] = {"bench": "workspace_proxy", "requests": args.requests,
                                 "reps": args.reps, "downloads": args.downloads}
    print(f"{'':26} {'proxy':>10} {'direct':>10} {'ratio':>7}   (target <= 1.5)")
    for path in PATHS:
        key = path.replace("/", "_")
        pm, dm = median(lat[path]["proxy"]), median(lat[path]["direct"])
        pp, dp = percentile(lat[path]["proxy"], 95), percentile(lat[path]["direct"], 95)
        print(f"GET {path:14} median {pm * 1000:8.2f}ms {dm * 1000:8.2f}ms {pm / dm:7.2f}")
        print(f"GET {path:14} p95    {pp * 1000:8.2f}ms {dp * 1000:8.2f}ms {pp / dp:7.2f}")
        result.update({f"{key}_proxy_median_ms": round(pm * 1000, 2),
                       f"{key}_direct_median_ms": round(dm * 1000, 2),
                       f"{key}_proxy_p95_ms": round(pp * 1000, 2),
                       f"{key}_direct_p95_ms": round(dp * 1000, 2),
                       f"{key}_ratio": round(pm / dm, 2)})
    pm, dm = median(dl["proxy"]), median(dl["direct"])
    mb = SIZE / 1e6
    print(f"GET files/20MB    median {pm * 1000:8.0f}ms {dm * 1000:8.0f}ms {pm / dm:7.2f}"
          f"   ({mb / pm:.0f} vs {mb / dm:.0f} MB/s)")
    result.update({"download_proxy_median_s": round(pm, 3),
                   "download_direct_median_s": round(dm, 3),
                   "download_proxy_mb_s": round(mb / pm, 1),
                   "download_direct_mb_s": round(mb / dm, 1),
                   "download_ratio": round(pm / dm, 2),
                   "download_proxy_s": [round(v, 3) for v in dl["proxy"]],
                   "download_direct_s": [round(v, 3) for v in dl["direct"]],
                   "target": "<= 1.5"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
