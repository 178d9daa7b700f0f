"""Upload and download through Balsam's data API vs boto3 straight to the S3 server.

Starts a whole platform (``_platform``: SeaweedFS, the app and uvicorn in this
process), a project, and a file of ``--size-mb`` random bytes on disk. Then, side by
side and alternating which goes first, ``--runs`` times:

* **balsam**: ``PUT /api/v1/projects/{id}/data/main/big.bin`` with the file streamed as
  the body (httpx, 1 MiB chunks), and ``GET`` of it, read to the end;
* **direct**: boto3's ``upload_file`` and ``download_fileobj`` (its defaults: 8 MiB
  parts, 10 threads) with the admin key, straight to the S3 server.

Prints medians in MB/s and the ratios balsam/direct (target >= 0.8), and the control
plane's peak memory during one Balsam upload (this process's peak RSS, reset just
before through ``/proc/self/clear_refs``; target < 200 MB), and a JSON line.

    .venv/bin/python bench/bench_data_transfer.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
from _platform import Platform, platform
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

TARGET_RATIO = 0.8
TARGET_RSS_MB = 200


def _client(p: Platform) -> Any:
    settings = p.ctx.settings.storage
    assert settings.admin_access_key and settings.admin_secret_key
    return boto3.client(
        "s3",
        endpoint_url=p.ctx.providers.storage.endpoint_url,
        region_name=p.ctx.providers.storage.region,
        aws_access_key_id=settings.admin_access_key,
        aws_secret_access_key=settings.admin_secret_key.get_secret_value(),
        config=Config(s3={"addressing_style": "path"}, read_timeout=300),
    )


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


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
        s3 = _client(p)
        source = Path(tmp) / "big.bin"
        with source.open("wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1 << 20))
        url = f"/api/v1/projects/{project_id}/data/main/big.bin"
        transfer = TransferConfig()

        def balsam_up() -> None:
            answer = api.put(url, content=_chunks(source))
            assert answer.status_code == 201, answer.text

        def balsam_down() -> None:
            with api.stream("GET", url) as answer:
                assert answer.status_code == 200
                got = sum(len(c) for c in answer.iter_bytes(1 << 20))
            assert got == size

        def direct_up() -> None:
            s3.upload_file(str(source), bucket, "main/direct.bin", Config=transfer)

        def direct_down() -> None:
            sink = io.BytesIO() if size <= 64 << 20 else _Counter()
            s3.download_fileobj(bucket, "main/direct.bin", sink, Config=transfer)

        sides = {
            "balsam": (balsam_up, balsam_down),
            "direct": (direct_up, direct_down),
        }
        rates: dict[str, dict[str, list[float]]] = {side: {"up": [], "down": []} for side in sides}
        for run in range(args.runs):
            order = ("balsam", "direct") if run % 2 == 0 else ("direct", "balsam")
            for side in order:
                for direction, call in zip(("up", "down"), sides[side], strict=True):
                    start = time.perf_counter()
                    call()
                    rates[side][direction].append(size / 1e6 / (time.perf_counter() - start))
        _reset_peak()
        base = _peak_rss_mb()
        balsam_up()
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
        result[direction] = {**{s: medians[s][direction] for s in sides}, "ratio": ratio}
    print(f"peak RSS during a Balsam upload: {peak:.0f} MB (before it {base:.0f} MB; "
          f"target < {TARGET_RSS_MB} MB)")  # fmt: skip
    result["peak_rss_mb"] = peak
    print(json.dumps(result))


class _Counter(io.RawIOBase):
    """A sink that only counts (a download of 1 GB need not be kept)."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.count += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:  # boto3 checks seekability
        return self.count

    def tell(self) -> int:
        return self.count


if __name__ == "__main__":
    main()
