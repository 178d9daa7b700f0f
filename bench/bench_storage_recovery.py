"""Recovery from a crash of the embedded SeaweedFS, through a real ``balsam up``.

Starts ``balsam up`` (its own data dir, SQLite, free ports), creates a project,
then ``--crashes`` times: ``kill -9`` of weed, and from that instant

* to the first 503: a request that needs storage (mint a key:
  ``POST /api/v1/projects/<id>/credentials``) sent at once and again every
  ``--interval`` seconds until one answers 503 (with ``Retry-After``);
* to storage answering again: the same request, until one answers 201.

Then ``--pauses`` times: ``kill -STOP`` of weed, and the time until a key mint
and a project creation (each on its own) answer, and with what status; weed is
resumed (``kill -CONT``) after each.

Between crashes it waits until weed has been up longer than the supervisor's
``stable_after`` (so each crash starts from the first backoff step, as an
isolated crash in production would; a crash loop backs off further by design).

    .venv/bin/python bench/bench_storage_recovery.py --crashes 10

Prints Markdown tables and a final JSON line. Target: p95 of both < 5 s; a
paused weed holds no request much longer than the client timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _platform import ROOT, percentile

from balsam.embedded.supervisor import STABLE_AFTER_S
from tests.cli.test_cli import balsam_command, seaweed_http_ports, weed_pids
from tests.fixtures.server import free_port

PASSWORD = "Recovery-bench-password-7"
MINT = "/projects/recovery/credentials"


def start_balsam(workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    s3, master, volume, filer, admin, workspaces = seaweed_http_ports(6)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALSAM_")}
    env.update(
        {
            "BALSAM_DATABASE_URL": f"sqlite:///{workdir / 'balsam.db'}",
            "BALSAM_ADMIN_PASSWORD": PASSWORD,
            "PYTHONPATH": str(ROOT / "src"),
            "BALSAM_WORKSPACES__ENVIRONMENTS_DIR": str(ROOT / ".cache" / "environments"),
            "BALSAM_STORAGE__S3_PORT": str(s3),
            "BALSAM_STORAGE__MASTER_PORT": str(master),
            "BALSAM_STORAGE__VOLUME_PORT": str(volume),
            "BALSAM_STORAGE__FILER_PORT": str(filer),
            "BALSAM_STORAGE__ADMIN_PORT": str(admin),
            "BALSAM_WORKSPACES__PORT": str(workspaces),
        }
    )
    data_dir = workdir / "data"
    with (workdir / "balsam.err").open("wb") as err:
        process = subprocess.Popen(
            [*balsam_command(), "up", "--data-dir", str(data_dir), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((workdir / "balsam.err").read_text())
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return process, url, data_dir / "storage"
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("balsam up did not start")


def api_client(url: str) -> httpx.Client:
    token = httpx.post(
        f"{url}/api/v1/users/me/tokens",
        auth=("admin", PASSWORD),
        json={"name": "bench"},
        timeout=30,
    ).json()["token"]
    client = httpx.Client(
        base_url=f"{url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    created = client.post("/projects", json={"name": "Recovery", "branchName": "main"})
    assert created.status_code == 201, created.text
    return client


def one_crash(api: httpx.Client, storage_dir: Path, interval: float) -> dict[str, float]:
    """Kill weed; seconds to the first 503 and to the first 201 after it."""
    (pid,) = weed_pids(storage_dir)
    os.kill(pid, signal.SIGKILL)
    crashed = time.monotonic()
    first_503 = None
    while True:
        reply = api.post(MINT, json={"name": "probe"})
        now = time.monotonic() - crashed
        if reply.status_code == 503 and first_503 is None:
            assert reply.headers.get("retry-after"), reply.headers
            first_503 = now
        elif reply.status_code == 201 and first_503 is not None:
            return {"first_503_s": first_503, "recovered_s": now}
        elif reply.status_code not in (201, 503):
            raise SystemExit(f"unexpected answer {reply.status_code}: {reply.text}")
        if now > 60:
            raise SystemExit("storage did not recover within 60 s")
        time.sleep(interval)


def one_pause(api: httpx.Client, storage_dir: Path, number: int) -> dict[str, Any]:
    """Pause weed; how long a mint and a project creation take to answer, and how."""
    (pid,) = weed_pids(storage_dir)
    os.kill(pid, signal.SIGSTOP)
    try:
        result: dict[str, Any] = {}
        for name, path, body in (
            ("mint", MINT, {"name": "paused"}),
            ("project", "/projects", {"name": f"Paused {number}", "branchName": "main"}),
        ):
            started = time.monotonic()
            reply = api.post(path, json=body, timeout=300)
            result[f"{name}_s"] = time.monotonic() - started
            result[f"{name}_status"] = reply.status_code
    finally:
        os.kill(pid, signal.SIGCONT)
    while api.get("/health/ready").json()["components"]["storage"] != "ok":
        time.sleep(0.2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--pauses", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="balsam-recovery-") as tmp:
        process, url, storage_dir = start_balsam(Path(tmp))
        try:
            api = api_client(url)
            runs = []
            for number in range(args.crashes):
                runs.append(one_crash(api, storage_dir, args.interval))
                print(f"crash {number + 1}: {runs[-1]}", file=sys.stderr)
                time.sleep(STABLE_AFTER_S + 1)
            pauses = [one_pause(api, storage_dir, n) for n in range(args.pauses)]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    report(runs, pauses)


def report(runs: list[dict[str, Any]], pauses: list[dict[str, Any]]) -> None:
    summary = {}
    print("| measure | p50 | p95 | max | target |\n|---|---|---|---|---|")
    for key, label in (
        ("first_503_s", "crash → first 503"),
        ("recovered_s", "crash → storage answers again"),
    ):
        values = [run[key] for run in runs]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        summary[key] = {"p50": round(p50, 3), "p95": round(p95, 3), "max": round(max(values), 3)}
        print(f"| {label} | {p50:.2f} s | {p95:.2f} s | {max(values):.2f} s | p95 < 5 s |")
    print("\n| paused weed | answered after (max) | statuses |\n|---|---|---|")
    for name in ("mint", "project"):
        worst = max((p[f"{name}_s"] for p in pauses), default=0.0)
        statuses = sorted({p[f"{name}_status"] for p in pauses})
        summary[f"paused_{name}"] = {"max_s": round(worst, 3), "statuses": statuses}
        print(f"| {name} | {worst:.2f} s | {statuses} |")
    print(json.dumps({"crashes": len(runs), **summary}))


if __name__ == "__main__":
    main()
