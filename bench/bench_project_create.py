"""Project creation: ``POST /api/v1/projects`` vs the sum of its raw parts.

Raw parts, done directly on the same servers in the same run: create a bare
repository with its initial commit (git provider), create the bucket and its
marker object, and mint a scoped key (storage provider). The ratio is the
control plane's overhead (HTTP, validation, database, audit). Target ≤ 1.5.

    .venv/bin/python bench/bench_project_create.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import time

import httpx
from _platform import Platform, median, platform

from balsam.domain.projects.service import initial_files, marker_body
from balsam.providers.git.base import Author


def raw_parts(p: Platform, i: int) -> float:
    git, storage = p.ctx.providers.git, p.ctx.providers.storage
    rid = f"raw-{i}"
    start = time.perf_counter()
    git.create_repository(
        rid,
        default_branch="main",
        files=initial_files(rid, "d"),
        message="init",
        author=Author("bench", "bench@example.org"),
    )
    storage.create_bucket(rid)
    storage.put_object(rid, "main/readme.txt", marker_body(rid, "main"))
    storage.create_key(rid, label=f"bench@{rid}")
    return time.perf_counter() - start


def via_api(p: Platform, client: httpx.Client, i: int) -> float:
    start = time.perf_counter()
    r = client.post(
        "/api/v1/projects", json={"name": f"Bench {i}", "description": "d", "branchName": "main"}
    )
    elapsed = time.perf_counter() - start
    assert r.status_code == 201, r.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with platform() as p, httpx.Client(base_url=p.url, headers=p.headers, timeout=60) as client:
        via_api(p, client, -1)
        raw_parts(p, -1)  # warm up both paths
        api, raw = [], []
        for i in range(args.runs):  # interleaved so drift hits both sides alike
            api.append(via_api(p, client, i))
            raw.append(raw_parts(p, i))
    result = {
        "bench": "project_create",
        "runs": args.runs,
        "api_median_ms": round(median(api) * 1000, 1),
        "raw_median_ms": round(median(raw) * 1000, 1),
        "ratio": round(median(api) / median(raw), 2),
        "target": "<= 1.5",
    }
    print(
        f"POST /projects median {result['api_median_ms']} ms; raw parts median "
        f"{result['raw_median_ms']} ms; ratio {result['ratio']} (target <= 1.5)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
