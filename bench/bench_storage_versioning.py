"""What keeping versions costs: puts, overwrites and a listing on a versioned bucket
versus an unversioned one, same server, same run, alternating which goes first.

Starts its own embedded SeaweedFS in a temporary directory. Each round puts
``--objects`` objects of 1 KiB, overwrites them, and lists them, in both buckets.
Prints medians and the ratio versioned/unversioned, then a JSON line.

    PYTHONPATH=src .venv/bin/python bench/bench_storage_versioning.py --objects 200 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_s3_throughput import s3_client

from balsam.embedded import SeaweedPorts, SeaweedServer

BUCKETS = {"versioned": "bench-versioned", "unversioned": "bench-unversioned"}


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _round(client: Any, bucket: str, objects: int, body: bytes) -> dict[str, float]:
    keys = [f"main/o-{i:05d}" for i in range(objects)]

    def put_all() -> None:
        for key in keys:
            client.put_object(Bucket=bucket, Key=key, Body=body)

    return {
        "put": _timed(put_all),
        "overwrite": _timed(put_all),
        "list": _timed(lambda: client.list_objects_v2(Bucket=bucket, Prefix="main/")),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    access, secret = "BENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)
    with (
        tempfile.TemporaryDirectory(prefix="bench-versioning-") as tmp,
        SeaweedServer(
            Path(tmp) / "s3",
            ports=SeaweedPorts.pick_free(),
            admin_access_key=access,
            admin_secret_key=secret,
        ) as server,
    ):
        client = s3_client(server.endpoint_url, access, secret)
        for kind, bucket in BUCKETS.items():
            client.create_bucket(Bucket=bucket)
            if kind == "versioned":
                client.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                )
        times: dict[str, dict[str, list[float]]] = {k: {} for k in BUCKETS}
        body = secrets.token_bytes(1024)
        for n in range(args.rounds):
            order = list(BUCKETS) if n % 2 == 0 else list(reversed(BUCKETS))
            for kind in order:
                for name, took in _round(client, BUCKETS[kind], args.objects, body).items():
                    times[kind].setdefault(name, []).append(took)
    result = {
        kind: {name: statistics.median(values) for name, values in ops.items()}
        for kind, ops in times.items()
    }
    ratios = {
        name: result["versioned"][name] / result["unversioned"][name]
        for name in result["versioned"]
    }
    print(f"{args.objects} objects of 1 KiB, {args.rounds} rounds (medians):")
    for name, ratio in ratios.items():
        print(
            f"  {name:9} versioned {result['versioned'][name]:.3f} s, unversioned "
            f"{result['unversioned'][name]:.3f} s, ratio {ratio:.2f}"
        )
    print(json.dumps({"objects": args.objects, "medians_s": result, "ratios": ratios}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
