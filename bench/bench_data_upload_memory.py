"""Memory of ``balsam up`` itself while large uploads pass through it, and the
browser's way of uploading (resumable parts) against boto3 straight to the S3 server.

Starts a real ``balsam up`` (a child process, embedded SeaweedFS, its own ports and
data folder), a project, and a file of ``--size-mb`` random bytes. Then:

* **rss**: samples the ``balsam up`` process's resident memory (``VmRSS``, every
  20 ms) while the file goes through (a) ``PUT …/data/{path}`` streamed by curl and
  (b) a resumable upload (``POST …/data/uploads``, parts ``PUT`` three at a time, as
  the portal's page sends them, ``complete``); prints the peak against the idle
  figure before (target: peak < 200 MB);
* **ratio**: (b) timed against boto3's ``upload_file`` (8 MiB parts, 10 threads, the
  admin key) in the same run, ``--runs`` times alternating which goes first.

    .venv/bin/python bench/bench_data_upload_memory.py [--size-mb 2048] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.cli.test_cli import BalsamUp, up_environment  # noqa: E402
from tests.fixtures.server import free_port  # noqa: E402

TARGET_RSS_MB = 200
#: The admin password of the `balsam up` the bench starts (random each run).
PASSWORD = "Bench-" + secrets.token_urlsafe(18)
SENDING = 3


class RssSampler:
    """The peak VmRSS of ``pid`` while the block runs (MB)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _put_with_curl(url: str, token: str, source: Path) -> None:
    with tempfile.NamedTemporaryFile("w", delete=False) as header:
        header.write(f"Authorization: Bearer {token}\n")  # not in curl's arguments
    try:
        subprocess.run(
            ["curl", "-sSf", "-o", "/dev/null", "-H", f"@{header.name}", "-T", str(source), url],
            check=True,
        )
    finally:
        os.unlink(header.name)


def _resumable(api: httpx.Client, project_id: str, path: str, source: Path) -> None:
    """The portal page's way: start, parts three at a time, complete."""
    size = source.stat().st_size
    started = api.post(f"/api/v1/projects/{project_id}/data/uploads",
                       json={"path": path, "size": size})  # fmt: skip
    assert started.status_code == 201, started.text
    upload = started.json()
    base = f"/api/v1/projects/{project_id}/uploads/{upload['id']}"

    def send(number: int) -> None:
        with source.open("rb") as file:
            file.seek((number - 1) * upload["partSize"])
            data = file.read(upload["partSize"])
        answer = api.put(f"{base}/parts/{number}", content=data)
        assert answer.status_code == 200, answer.text

    with ThreadPoolExecutor(SENDING) as pool:
        list(pool.map(send, range(1, upload["partsTotal"] + 1)))
    done = api.post(f"{base}/complete")
    assert done.status_code == 201, done.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **up_environment(f"sqlite:///{tmp}/balsam.db"),
            "BALSAM_ADMIN_PASSWORD": PASSWORD,
            "PYTHONPATH": str(ROOT / "src"),
        }
        data_dir = Path(tmp) / "data"
        server = BalsamUp(env, data_dir, free_port(), "bench")
        try:
            server.wait_until_serving()
            s3_url = f"http://127.0.0.1:{env['BALSAM_STORAGE__S3_PORT']}"
            result = _measure(server, s3_url, data_dir, Path(tmp), args.size_mb, args.runs)
        finally:
            server.kill()
            subprocess.run(["pkill", "-KILL", "-f", str(data_dir / "storage")], check=False)
    print(json.dumps(result))


def _measure(
    server: BalsamUp, s3_url: str, data_dir: Path, tmp: Path, size_mb: int, runs: int
) -> dict[str, Any]:
    size = size_mb * 1024 * 1024
    token = httpx.post(f"{server.url}/api/v1/users/me/tokens", auth=("admin", PASSWORD),
                       json={"name": "bench"}, timeout=30).json()["token"]  # fmt: skip
    api = httpx.Client(base_url=server.url, timeout=600,
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    project = api.post("/api/v1/projects", json={"name": "Minne", "branchName": "main"}).json()
    source = tmp / "big.bin"
    with source.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1 << 20))
    admin = json.loads((data_dir / "storage" / "admin.json").read_text())
    s3 = boto3.client("s3", endpoint_url=s3_url,
                      region_name="us-east-1", aws_access_key_id=admin["access_key"],
                      aws_secret_access_key=admin["secret_key"],
                      config=Config(s3={"addressing_style": "path"}))  # fmt: skip

    sampler = RssSampler(server.process.pid)
    idle = sampler.now()
    with RssSampler(server.process.pid) as put_rss:
        _put_with_curl(f"{server.url}/api/v1/projects/{project['id']}/data/main/put.bin",
                       token, source)  # fmt: skip
    with RssSampler(server.process.pid) as parts_rss:
        _resumable(api, project["id"], "main/parts.bin", source)
    print(f"balsam up: idle {idle:.0f} MB; peak during a {size_mb} MiB PUT "
          f"{put_rss.peak:.0f} MB, during a resumable upload {parts_rss.peak:.0f} MB "
          f"(target < {TARGET_RSS_MB} MB)")  # fmt: skip

    times: dict[str, list[float]] = {"parts": [], "direct": []}
    for run in range(runs):
        order = ("parts", "direct") if run % 2 == 0 else ("direct", "parts")
        for side in order:
            start = time.perf_counter()
            if side == "parts":
                _resumable(api, project["id"], "main/parts.bin", source)
            else:
                s3.upload_file(str(source), project["bucket"], "main/direct.bin")
            times[side].append(time.perf_counter() - start)
    rates = {side: size / 1e6 / statistics.median(t) for side, t in times.items()}
    ratio = rates["parts"] / rates["direct"]
    print(f"resumable upload {rates['parts']:.1f} MB/s (with the read-back for SHA-256), "
          f"boto3 direct {rates['direct']:.1f} MB/s: ratio {ratio:.2f}")  # fmt: skip
    return {
        "bench": "data_upload_memory",
        "size_mb": size_mb,
        "idle_rss_mb": idle,
        "put_peak_rss_mb": put_rss.peak,
        "parts_peak_rss_mb": parts_rss.peak,
        "parts_mb_s": rates["parts"],
        "direct_mb_s": rates["direct"],
        "ratio": ratio,
    }


if __name__ == "__main__":
    main()
