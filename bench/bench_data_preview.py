"""Data previews of 1 GB objects through Balsam's API vs the same reads straight from S3.

Starts a whole platform (``_platform``: SeaweedFS, the app, uvicorn), a project, and
puts two objects of ``--size-mb`` (default 1024) into its bucket straight to S3 (not
timed): a CSV and a Parquet file (float columns, row groups of 1M rows). Then, side
by side and alternating which goes first, ``--runs`` times each:

* **balsam**: ``GET /api/v1/projects/{id}/data/{path}?preview=true`` over HTTP with a
  token: the schema and first 100 rows (authorization, ranged reads, JSON);
* **direct**: the least the same preview needs, with boto3 and the admin key: for the
  CSV one ranged GET of its first 256 KiB and the first 101 lines parsed; for the
  Parquet file pyarrow's footer and first 100 rows over ranged GETs (``pyarrow.fs``
  is not used: its S3 support is a separate build).

Prints p50 and p95 of each side, the ratio balsam/direct of the p95s and whether
Balsam's p95 meets the target (< 300 ms), and a JSON line.

    .venv/bin/python bench/bench_data_preview.py [--size-mb 1024] [--runs 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _platform import Platform, percentile, platform
from botocore.config import Config

from balsam.domain.data.preview import HEAD_BYTES, ROWS, _Ranged

TARGET_P95 = 0.300


def _client(p: Platform) -> Any:
    storage = p.ctx.providers.storage
    settings = p.ctx.settings.storage
    assert settings.admin_access_key and settings.admin_secret_key
    return boto3.client(
        "s3",
        endpoint_url=storage.endpoint_url,
        region_name=storage.region,
        aws_access_key_id=settings.admin_access_key,
        aws_secret_access_key=settings.admin_secret_key.get_secret_value(),
        config=Config(s3={"addressing_style": "path"}, read_timeout=300),
    )


def _make_csv(path: Path, size: int) -> None:
    rng = random.Random(1)
    block = "".join(
        f"{i};Örebro län;{x:.6f};{'ja' if x > 0.5 else 'nej'}\n"
        for i, x in enumerate(rng.random() for _ in range(100_000))
    ).encode()
    with path.open("wb") as out:
        out.write(b"id;region;andel;svar\n")
        while out.tell() < size:
            out.write(block)


def _make_parquet(path: Path, size: int) -> None:
    rows_per_group, columns = 1_000_000, 16
    groups = max(1, size // (rows_per_group * columns * 8))
    schema = pa.schema([(f"c{i}", pa.float64()) for i in range(columns)])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(groups):
            data = {f"c{i}": pc.random(rows_per_group) for i in range(columns)}
            writer.write_table(pa.table(data, schema=schema))


def _direct_csv(s3: Any, bucket: str, key: str) -> None:
    body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")["Body"]
    lines = body.read().decode("utf-8", "replace").splitlines()[: ROWS + 1]
    rows = list(csv.reader(lines, delimiter=";"))
    assert len(rows) == ROWS + 1


def _direct_parquet(s3: Any, bucket: str, key: str, size: int) -> None:
    def read(first: int, last: int) -> bytes:
        answer = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")
        data: bytes = answer["Body"].read()
        return data

    file = pq.ParquetFile(pa.PythonFile(_Ranged(size, read), mode="r"), buffer_size=1 << 20)
    batch = next(file.iter_batches(batch_size=ROWS, row_groups=[0]))
    assert batch.num_rows == ROWS


def _time(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    with platform() as p, tempfile.TemporaryDirectory() as tmp:
        api = httpx.Client(base_url=p.url, headers=p.headers, timeout=60)
        project = api.post(
            "/api/v1/projects", json={"name": "Förhandsvisning", "branchName": "main"}
        ).json()
        bucket, s3 = project["bucket"], _client(p)
        files = {"csv": Path(tmp) / "stor.csv", "parquet": Path(tmp) / "stor.parquet"}
        print(f"writing and uploading two objects of {args.size_mb} MB ...", flush=True)
        _make_csv(files["csv"], size)
        _make_parquet(files["parquet"], size)
        sizes = {}
        for kind, path in files.items():
            s3.upload_file(str(path), bucket, f"main/{path.name}")
            sizes[kind] = path.stat().st_size
            os.unlink(path)

        def balsam(kind: str) -> Callable[[], None]:
            def call() -> None:
                shown = api.get(
                    f"/api/v1/projects/{project['id']}/data/main/stor.{kind}",
                    params={"preview": "true"},
                ).json()
                assert len(shown["rows"]) == ROWS, shown

            return call

        direct = {
            "csv": lambda: _direct_csv(s3, bucket, "main/stor.csv"),
            "parquet": lambda: _direct_parquet(s3, bucket, "main/stor.parquet", sizes["parquet"]),
        }
        times: dict[str, dict[str, list[float]]] = {}
        for kind in ("csv", "parquet"):
            sides = {"balsam": balsam(kind), "direct": direct[kind]}
            for side in sides.values():
                side()  # warm: connections, pyarrow
            got: dict[str, list[float]] = {"balsam": [], "direct": []}
            for run in range(args.runs):
                order = ("balsam", "direct") if run % 2 == 0 else ("direct", "balsam")
                for side in order:
                    got[side].append(_time(sides[side]))
            times[kind] = got
    result: dict[str, Any] = {"bench": "data_preview", "size_mb": args.size_mb, "runs": args.runs}
    print(f"{'':10s} {'side':7s} {'p50':>8s} {'p95':>8s}")
    for kind, got in times.items():
        p95 = {side: percentile(values, 95) for side, values in got.items()}
        for side, values in got.items():
            print(f"{kind:10s} {side:7s} {percentile(values, 50) * 1000:7.1f}ms "
                  f"{p95[side] * 1000:7.1f}ms")  # fmt: skip
        ratio = p95["balsam"] / p95["direct"]
        meets = "meets" if p95["balsam"] < TARGET_P95 else "misses"
        print(f"{kind:10s} balsam/direct p95 {ratio:.2f}; Balsam's p95 {meets} < 300 ms")
        result[kind] = {"balsam_p95_s": p95["balsam"], "direct_p95_s": p95["direct"],
                        "ratio_p95": ratio, "size_bytes": sizes[kind]}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
