"""The portal's pages rendered on the server, over HTTP with a browser's session:
*Projekt* for a user with 1,000 projects (random pages of 24 cards), and the
*Filer* tab of a repository of 5,000 files (one folder of it, listed on its own).
Target p95 < 100 ms each; the pages' scripts and styles together < 200 KB.

    .venv/bin/python bench/bench_portal_render.py [--projects 1000] [--files 5000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import time

import httpx
from _platform import Platform, percentile, platform

from balsam.db.models import Branch, Membership, Project
from balsam.domain.identity.schemas import UserCreate
from balsam.domain.identity.service import IdentityService
from balsam.providers.git.base import Author
from balsam.web.pages.render import STATIC_ROOT


def seed_projects(p: Platform, user_id: int, n: int) -> None:
    """``n`` projects the user is a member of, straight into the database (their
    repositories and buckets are not what the page reads)."""
    with p.ctx.sessions() as session, session.begin():
        for i in range(n):
            pid = f"seeded-{i:05d}"
            session.add(Project(id=pid, name=f"Seeded project {i}", name_key=f"seeded project {i}",
                                description=f"Statistics series {i % 97}", default_branch="main",
                                bucket=pid, created_by=user_id))  # fmt: skip
            session.add(Branch(project_id=pid, id="main", is_default=True))
            session.add(Branch(project_id=pid, id="utveckling", is_default=False))
            session.add(Membership(project_id=pid, user_id=user_id, role="owner"))


def big_repository(p: Platform, client: httpx.Client, username: str, files: int) -> str:
    """A real project (repository, bucket) with ``files`` files in one commit."""
    r = client.post("/api/v1/projects", json={"name": "Many files", "branchName": "main"})
    assert r.status_code == 201, r.text
    pid: str = r.json()["id"]
    added = client.post(f"/api/v1/projects/{pid}/members", json={"username": username})
    assert added.status_code == 201, added.text
    content = {f"data/part{i // 100:03d}/file{i:05d}.csv": b"a,b\n1,2\n" for i in range(files)}
    p.ctx.providers.git.commit_files(pid, "main", content, message="many files",
                                     author=Author("bench", "bench@balsam.local"))  # fmt: skip
    return pid


def log_in(url: str, username: str, password: str) -> httpx.Client:
    browser = httpx.Client(base_url=url, timeout=30, headers={"Accept-Language": "sv"})
    r = browser.post("/login", data={"username": username, "password": password, "next": "/"},
                     headers={"Origin": url})  # fmt: skip
    assert r.status_code == 303, r.text
    return browser


def timed(browser: httpx.Client, paths: list[str], expect: str) -> list[float]:
    times = []
    for path in paths:
        start = time.perf_counter()
        r = browser.get(path)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200 and expect in r.text, (path, r.status_code)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(times, 50) * 1000, 1),
            "p95_ms": round(percentile(times, 95) * 1000, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    password = secrets.token_urlsafe(18)
    with platform() as p:
        user = IdentityService(p.ctx).create_user(
            None, UserCreate(username="reader", password=password)
        )
        seed_projects(p, user.id, args.projects)
        with httpx.Client(base_url=p.url, headers=p.headers, timeout=120) as api:
            pid = big_repository(p, api, "reader", args.files)
        browser = log_in(p.url, "reader", password)
        pages = -(-(args.projects + 1) // 24)
        rng = random.Random(7)
        listing = [f"/projects?page={rng.randrange(1, pages + 1)}" for _ in range(args.requests)]
        last = f"data/part{(args.files - 1) // 100:03d}"
        files = [f"/projects/{pid}?tab=files&path={last}"] * (args.requests // 2)
        timed(browser, listing[:10] + files[:5], "<main")  # warm up
        results = {
            "projekt": summary(timed(browser, listing, 'class="card"')),
            "filer": summary(timed(browser, files, f"file{args.files - 1:05d}.csv")),
        }
        shown = len(re.findall(r"<tr>", browser.get(files[0]).text)) - 1
        browser.close()
    assets = sum(
        f.stat().st_size for f in STATIC_ROOT.iterdir() if f.name.endswith((".css", ".js"))
    )
    for label, r in results.items():
        print(f"{label:8s} p50 {r['p50_ms']:6.1f} ms   p95 {r['p95_ms']:6.1f} ms (target < 100)")
    print(f"scripts and styles: {assets / 1024:.1f} KB (target < 200); Filer rows: {shown}")
    print(json.dumps({"bench": "portal_render", "projects": args.projects, "files": args.files,
                      **results, "asset_bytes": assets}))  # fmt: skip


if __name__ == "__main__":
    main()
