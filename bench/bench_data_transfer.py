"""Upload and download through Balsam's data API vs boto3 straight to the S3 server.

Starts a whole platform (``_platform``: SeaweedFS, the app and uvicorn in this
process), a project, and a file of ``--size-mb`` random bytes on disk. Then, side by
side and alternating which goes first, ``--runs`` times:

* **balsam**: ``PUT /api/v1/projects/{id}/data/main/big.bin`` with the file streamed as
  the body (httpx, 1 MiB chunks), and ``GET`` of it with curl to ``/dev/null`` (a Python
  client's own reading tops out near the server's speed);
* **direct**: boto3's ``upload_file`` and ``download_fileobj`` (its defaults: 8 MiB
  parts, 10 threads) with the admin key, straight to the S3 server.

Each side's client runs in a process of its own (the app serves in this one).

Prints medians in MB/s and the ratios balsam/direct (target >= 0.8), and the control
plane's peak memory during one Balsam upload (this process's peak RSS, reset just
before through ``/proc/self/clear_refs``; target < 200 MB), and a JSON line.

    .venv/bin/python bench/bench_data_transfer.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _platform import platform

TARGET_RATIO = 0.8
TARGET_RSS_MB = 200


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


#: Each side's client runs in a process of its own: the app serves in this one, and a
#: client sharing its interpreter lock would slow the server it measures.
CLIENT = r"""
import sys, time, json
side, direction, path = sys.argv[1:4]
start = time.perf_counter()
if side == "balsam":
    import httpx
    url, token = sys.argv[4:6]
    api = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=600)
    if direction == "up":
        def chunks():
            with open(path, "rb") as source:
                while chunk := source.read(1 << 20):
                    yield chunk
        assert api.put(url, content=chunks()).status_code == 201
    else:  # curl reads faster than a Python client could: the server is what is timed
        import os, subprocess, tempfile
        with tempfile.NamedTemporaryFile("w", delete=False) as header:
            header.write(f"Authorization: Bearer {token}\n")  # not in curl's arguments
        try:
            subprocess.run(["curl", "-sSf", "-o", "/dev/null", "-H", f"@{header.name}", url],
                           check=True)
        finally:
            os.unlink(header.name)
else:
    import boto3
    from botocore.config import Config
    endpoint, access, secret, bucket, key = sys.argv[4:9]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=access, aws_secret_access_key=secret,
                      config=Config(s3={"addressing_style": "path"}, read_timeout=300))
    if direction == "up":
        s3.upload_file(path, bucket, key)
    else:
        with open("/dev/null", "wb") as sink:
            s3.download_fileobj(bucket, key, sink)
print(json.dumps(time.perf_counter() - start))
"""


def _run_client(*args: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"client failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    with platform() as p, tempfile.TemporaryDirectory() as tmp:
        api = httpx.Client(base_url=p.url, headers=p.headers, timeout=600)
        project = api.post("/api/v1/projects", json={"name": "Överföring", "branchName": "main"})
        project_id, bucket = project.json()["id"], project.json()["bucket"]
        settings = p.ctx.settings.storage
        assert settings.admin_access_key and settings.admin_secret_key
        s3_args = [
            p.ctx.providers.storage.endpoint_url,
            settings.admin_access_key,
            settings.admin_secret_key.get_secret_value(),
            bucket,
            "main/direct.bin",
        ]
        source = Path(tmp) / "big.bin"
        with source.open("wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1 << 20))
        url = f"{p.url}/api/v1/projects/{project_id}/data/main/big.bin"

        def side(name: str, direction: str) -> float:
            if name == "balsam":
                return _run_client(name, direction, str(source), url, p.token)
            return _run_client(name, direction, str(source), *s3_args)

        rates: dict[str, dict[str, list[float]]] = {
            name: {"up": [], "down": []} for name in ("balsam", "direct")
        }
        for run in range(args.runs):
            order = ("balsam", "direct") if run % 2 == 0 else ("direct", "balsam")
            for name in order:
                for direction in ("up", "down"):
                    rates[name][direction].append(size / 1e6 / side(name, direction))
        _reset_peak()
        base = _peak_rss_mb()
        side("balsam", "up")
        peak = _peak_rss_mb()
    medians = {s: {d: statistics.median(v) for d, v in r.items()} for s, r in rates.items()}
    result: dict[str, Any] = {"bench": "data_transfer", "size_mb": args.size_mb}
    for direction in ("up", "down"):
        ratio = medians["balsam"][direction] / medians["direct"][direction]
        print(
            f"{direction:4s} balsam {medians['balsam'][direction]:7.1f} MB/s   direct "
            f"{medians['direct'][direction]:7.1f} MB/s   ratio {ratio:.2f} "
            f"(target >= {TARGET_RATIO})"
        )
        result[direction] = {**{s: medians[s][direction] for s in medians}, "ratio": ratio}
    print(f"the serving process's peak RSS during a Balsam upload: {peak:.0f} MB (before it "
          f"{base:.0f} MB; target < {TARGET_RSS_MB} MB)")  # fmt: skip
    result["peak_rss_mb"] = peak
    result["rss_before_mb"] = base
    print(json.dumps(result))


if __name__ == "__main__":
    main()
