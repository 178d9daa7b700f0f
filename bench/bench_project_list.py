"""Project listing with 10,000 projects in the database: p95 of a paginated
``GET /api/v1/projects`` over HTTP. Target < 30 ms on the 2-core machine.

The rows are inserted straight into the database (10,000 providers' worth of
repositories and buckets would measure git and S3, not listing). Two views:
``all=false`` (the membership-filtered view every user gets) and ``all=true``
as an admin (no filter), each with a text filter case too.

    .venv/bin/python bench/bench_project_list.py [--projects 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import httpx
from _platform import Platform, percentile, platform

from balsam.db.models import Branch, Membership, Project


def seed(p: Platform, n: int) -> None:
    with p.ctx.sessions() as session, session.begin():
        for i in range(n):
            pid = f"seeded-{i:05d}"
            session.add(
                Project(
                    id=pid,
                    name=f"Seeded project {i}",
                    name_key=f"seeded project {i}",
                    description=f"Statistics series {i % 97}",
                    default_branch="main",
                    bucket=pid,
                    created_by=p.actor.user_id,
                )
            )
            session.add(Branch(project_id=pid, id="main", is_default=True))
            session.add(Membership(project_id=pid, user_id=p.actor.user_id, role="owner"))
            if i % 1000 == 999:
                session.flush()


def measure(client: httpx.Client, n: int, total: int, params: dict[str, str]) -> list[float]:
    times = []
    rng = random.Random(7)
    for _ in range(n):
        offset = 0 if "q" in params else rng.randrange(0, max(1, total - 50))
        query = {"limit": "50", "offset": str(offset), **params}
        start = time.perf_counter()
        r = client.get("/api/v1/projects", params=query)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    results = {}
    with platform() as p:
        t0 = time.perf_counter()
        seed(p, args.projects)
        seeded = time.perf_counter() - t0
        with httpx.Client(base_url=p.url, headers=p.headers, timeout=30) as client:
            measure(client, 20, args.projects, {})  # warm up
            for label, params in [
                ("member_view", {"all": "false"}),
                ("admin_all", {"all": "true"}),
                ("member_view_filtered", {"all": "false", "q": "series 4"}),
            ]:
                times = measure(client, args.requests, args.projects, params)
                results[label] = {
                    "p50_ms": round(percentile(times, 50) * 1000, 2),
                    "p95_ms": round(percentile(times, 95) * 1000, 2),
                }
    for label, r in results.items():
        print(f"{label:22s} p50 {r['p50_ms']:6.2f} ms   p95 {r['p95_ms']:6.2f} ms (target < 30)")
    print(
        json.dumps(
            {
                "bench": "project_list",
                "projects": args.projects,
                "seed_s": round(seeded, 1),
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
