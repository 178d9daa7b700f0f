"""Scoped storage keys at scale, through Balsam's API: mint and revoke with 0, 1,000
and 10,000 identities already on the embedded SeaweedFS.

Starts a whole platform (``bench/_platform.py``: weed, app, uvicorn) and, at each
level, measures over ``--runs`` keys:

* mint: ``POST /api/v1/projects/<id>/credentials`` (p50, p95);
* works after: from the start of that request until a request signed with the
  new key is accepted by the S3 port (tried right after the answer, then every
  few milliseconds);
* revoke: ``DELETE .../credentials/<key>`` (p50, p95);
* refused after: from the start of that request until the key is refused;
* 50 concurrent mints: wall time until all 50 answered;
* ``revoke_bucket_keys`` by a fresh provider (one lookup per identity) and again.

Levels are reached by creating identities directly through the filer's IAM gRPC
service, paced (at most ``--fill-rate`` per second, and a pause whenever an S3
request takes over 50 ms), so the S3 server stays responsive.

``--old-levels`` repeats the measurement for the path before issue 8 (IAM API on
the S3 port, provider 's3-iam'); it rewrites and pushes every identity per change,
so it is only run at small levels (10,000 would take hours).

    .venv/bin/python bench/bench_storage_keys.py --levels 0,1000,10000 --old-levels 0,100

Prints a Markdown table and a final JSON line. Targets: mint and revoke p95
< 100 ms, works/refused after p95 < 1 s, 50 concurrent mints < 2 s.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from _platform import Platform, percentile, platform

from balsam.providers.factory import build_storage_provider
from balsam.providers.storage.iam_pb import iam_pb2
from balsam.providers.storage.key_probe import KeyProbe
from balsam.providers.storage.seaweed_iam import SeaweedIamStorage, new_key_pair

FILLER_BUCKET = "bench-filler"
SLOW_S3_S = 0.05


class Api:
    """Balsam's credential endpoints for one project."""

    def __init__(self, bench: Platform) -> None:
        self.http = httpx.Client(base_url=f"{bench.url}/api/v1", headers=bench.headers,
                                 timeout=120, limits=httpx.Limits(max_connections=64))  # fmt: skip
        project = self.http.post("/projects", json={"name": "Keys bench", "branchName": "main"})
        project.raise_for_status()
        self.project_id = project.json()["id"]

    def mint(self) -> dict[str, Any]:
        reply = self.http.post(f"/projects/{self.project_id}/credentials", json={"name": "b"})
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()
        return result

    def revoke(self, access_key: str) -> None:
        reply = self.http.delete(f"/projects/{self.project_id}/credentials/{access_key}")
        reply.raise_for_status()


def mint_or_none(api: Api) -> dict[str, Any] | None:
    try:
        return api.mint()
    except httpx.HTTPError:
        return None


def until(check: Any, started: float, limit: float = 10.0) -> float:
    """Seconds from ``started`` until ``check()`` holds (polled every 2 ms)."""
    while not check():
        if time.perf_counter() - started > limit:
            return float("inf")
        time.sleep(0.002)
    return time.perf_counter() - started


def measure(api: Api, probe: KeyProbe, runs: int, concurrent: int) -> dict[str, float]:
    mint, works, revoke, refused = [], [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        cred = api.mint()
        mint.append(time.perf_counter() - started)
        key = (cred["accessKey"], cred["secretKey"], cred["bucket"])
        works.append(until(lambda k=key: probe.accepted(*k), started))
        started = time.perf_counter()
        api.revoke(cred["accessKey"])
        revoke.append(time.perf_counter() - started)
        refused.append(until(lambda k=key: not probe.accepted(*k), started))
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        minted = list(pool.map(lambda _: mint_or_none(api), range(concurrent)))
    # A request that timed out (120 s) counts as never finishing.
    burst = time.perf_counter() - started if all(minted) else float("inf")
    for cred in filter(None, minted):  # clean-up, one at a time (the next level's count)
        api.revoke(cred["accessKey"])
    return {"mint_p50": percentile(mint, 50), "mint_p95": percentile(mint, 95),
            "works_p95": percentile(works, 95), "revoke_p50": percentile(revoke, 50),
            "revoke_p95": percentile(revoke, 95), "refused_p95": percentile(refused, 95),
            "concurrent_s": burst}  # fmt: skip


def fill_grpc(storage: SeaweedIamStorage, start: int, stop: int, rate: float) -> None:
    """Create identities ``filler-<start>`` .. ``filler-<stop-1>`` through gRPC, paced."""
    for index in range(start, stop):
        began = time.perf_counter()
        access_key, secret_key = new_key_pair()
        identity = iam_pb2.Identity(
            name=f"filler-{index}", actions=[f"Read:{FILLER_BUCKET}"],
            credentials=[iam_pb2.Credential(access_key=access_key, secret_key=secret_key,
                                            status="Active")])  # fmt: skip
        request = iam_pb2.CreateUserRequest(identity=identity)
        storage.iam.call("fill", lambda s: s.CreateUser, request)
        if index % 100 == 99:
            wait_until_responsive(storage)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - began)))


def fill_s3_iam(storage: Any, start: int, stop: int) -> None:
    for _ in range(start, stop):
        storage.create_key(FILLER_BUCKET, label="filler")


def wait_until_responsive(storage: Any) -> None:
    """Pause while an S3 request takes longer than SLOW_S3_S (weed reloading)."""
    while True:
        began = time.perf_counter()
        storage.bucket_exists(FILLER_BUCKET)
        if time.perf_counter() - began < SLOW_S3_S:
            return
        time.sleep(0.5)


def scan_times(bench: Platform) -> dict[str, float]:
    """revoke_bucket_keys of a bucket without keys by a fresh provider (it looks up every
    identity once: ListUsers, then GetUser each), then again by the same one (cached)."""
    fresh = build_storage_provider(bench.ctx.settings)
    try:
        times = []
        for _ in range(2):
            began = time.perf_counter()
            fresh.revoke_bucket_keys("bench-no-keys")
            times.append(round(time.perf_counter() - began, 3))
    finally:
        fresh.close()
    return {"scan_cold_s": times[0], "scan_warm_s": times[1]}


def run_path(levels: list[int], *, old: bool, runs: int, concurrent: int, rate: float
             ) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    with platform(s3_iam_api=old) as bench:
        storage = bench.ctx.providers.storage
        storage.create_bucket(FILLER_BUCKET)
        api, probe = Api(bench), KeyProbe(bench.seaweed.endpoint_url, "us-east-1")
        existing = 0
        for level in levels:
            began = time.perf_counter()
            if old:
                fill_s3_iam(storage, existing, level)
            else:
                assert isinstance(storage, SeaweedIamStorage)
                fill_grpc(storage, existing, level, rate)
            fill_s = time.perf_counter() - began
            existing = level
            wait_until_responsive(storage)
            row = {
                "path": "S3-port IAM API (before)" if old else "filer IAM gRPC",
                "identities": level,
                "fill_s": round(fill_s, 1),
                **{k: round(v, 4) for k, v in measure(api, probe, runs, concurrent).items()},
            }
            if not old:
                row.update(scan_times(bench))
            print(json.dumps(row), flush=True)
            rows.append(row)
        probe.close()
    return rows


def ms(seconds: float) -> str:
    return "∞" if seconds == float("inf") else f"{seconds * 1000:.0f} ms"


def seconds(value: float) -> str:
    return "> 120 s (a request timed out)" if value == float("inf") else f"{value:.2f} s"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| path | identities | mint p50 / p95 | works after (p95) | revoke p50 / p95 | "
        "refused after (p95) | 50 concurrent mints |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['identities']:,} | {ms(r['mint_p50'])} / "
                     f"{ms(r['mint_p95'])} | {ms(r['works_p95'])} | {ms(r['revoke_p50'])} / "
                     f"{ms(r['revoke_p95'])} | {ms(r['refused_p95'])} | "
                     f"{seconds(r['concurrent_s'])} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--levels", default="0,1000,10000", help="identities before measuring")
    parser.add_argument("--old-levels", default="0,100", help="the same, old path ('' skips)")
    parser.add_argument("--runs", type=int, default=40, help="mint+revoke timed per level")
    parser.add_argument("--old-runs", type=int, default=10, help="the same for the old path")
    parser.add_argument("--concurrent", type=int, default=50, help="mints sent at once")
    parser.add_argument("--fill-rate", type=float, default=150.0, help="identities per second")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",") if v]
    old_levels = [int(v) for v in args.old_levels.split(",") if v]
    rows = run_path(levels, old=False, runs=args.runs, concurrent=args.concurrent,
                    rate=args.fill_rate)  # fmt: skip
    if old_levels:
        rows += run_path(old_levels, old=True, runs=args.old_runs, concurrent=args.concurrent,
                         rate=args.fill_rate)  # fmt: skip
    print(table(rows))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
