"""Knowledge-library search: SCB's library registered 100 times (≈13,000
documents). Reports the index build time (from scratch, into the database and
memory), the rebuild time of a fresh replica (from the database), and p50/p95
search latency over a fixed set of queries — in-process on the service (the
target: p95 < 20 ms on the 2-core machine) and over HTTP for a few queries.

The library is read from ``shared/upstream/knowledge-library`` through a
filesystem-backed tree reader (:class:`tests.domain.search.trees.DirectoryTree`).

    .venv/bin/python bench/bench_search.py [--libraries 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time

import httpx
from _platform import percentile, platform

from balsam.domain.search import SearchService
from tests.domain.search.trees import SCB_LIBRARY, DirectoryTree

QUERIES = [
    # Swedish, with and without diacritics
    "hämta",
    "hamta",
    "hämta data",
    "hamta data",
    "skapa projekt",
    "Skapa projekt",
    "ta bort projekt",
    "bearbetningsmiljö",
    "bearbetningsmiljo",
    "kunskapsbibliotek",
    "versionshantering",
    "säsongrensning",
    "sasongrensning",
    "imputering",
    "urval estimation",
    "prisindex",
    "månadsproduktion",
    "manadsproduktion",
    "läs indata",
    "las indata",
    "stapeldiagram",
    "cirkulärt stapeldiagram",
    "cirkulart",
    "datalagring",
    "maskininlärning",
    "maskininlarning",
    "arbetsrutiner",
    "kodningsaspekter",
    "produktionsflöde",
    "produktionsflode",
    "jämställdhet",
    "jamstalldhet",
    "hållbarhet",
    "miljö",
    "projekt",
    # English and code
    "parquet",
    "minio",
    "bucket",
    "read parquet",
    "write parquet",
    "pandas",
    "ggplot2",
    "python",
    "library",
    "install packages",
    "machine learning",
    "titanic",
    "heatmap",
    "boxplot",
    "s3",
    "environment variables",
    "data",
    "import",
    "print",
    # prefixes (the last word completes)
    "parq",
    "hämt",
    "proj",
    "diagramt",
    "säsong",
    "boxp",
    "skapa proj",
    "read_p",
    "kunskaps",
    "mini",
    "da",
]
HTTP_QUERIES = ["hamta", "skapa projekt", "parquet", "data", "proj"]


def build(service: SearchService, n: int) -> tuple[float, int]:
    service.warm()  # an empty database: from now on updates go to memory too
    tree = DirectoryTree(SCB_LIBRARY)
    started = time.perf_counter()
    documents = 0
    for i in range(n):
        documents += service.index_library(f"scb-{i:03d}", "HEAD", tree).documents
    return time.perf_counter() - started, documents


def in_process(service: SearchService, actor: object, rounds: int) -> dict[str, float]:
    times: list[float] = []
    for q in QUERIES:  # warm up (prefix vocabulary, caches)
        service.search(actor, q)  # type: ignore[arg-type]
    for _ in range(rounds):
        for q in QUERIES:
            started = time.perf_counter()
            service.search(actor, q)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
    return {
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p95_ms": round(percentile(times, 95) * 1000, 2),
        "max_ms": round(max(times) * 1000, 2),
        "samples": len(times),
    }


def over_http(url: str, headers: dict[str, str], rounds: int) -> dict[str, float]:
    times: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for q in HTTP_QUERIES:
            client.get("/api/v1/search", params={"q": q})
        for _ in range(rounds):
            for q in HTTP_QUERIES:
                started = time.perf_counter()
                r = client.get("/api/v1/search", params={"q": q})
                times.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
    return {
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p95_ms": round(percentile(times, 95) * 1000, 2),
        "samples": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--libraries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with platform() as p:
        service = SearchService(p.ctx)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        build_s, documents = build(service, args.libraries)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        replica = SearchService(dataclasses.replace(p.ctx))
        started = time.perf_counter()
        replica.warm()
        rebuild_s = time.perf_counter() - started
        reindex = service.index_library("scb-000", "HEAD", DirectoryTree(SCB_LIBRARY))
        local = in_process(service, p.actor, args.rounds)
        http = over_http(p.url, p.headers, 20)
        sample = service.search(p.actor, "skapa projekt", limit=3)  # type: ignore[arg-type]
    print(
        f"documents            {documents} in {args.libraries} libraries ({len(QUERIES)} queries)"
    )
    print(f"index build          {build_s:6.2f} s (database + memory, from scratch)")
    print(f"replica rebuild      {rebuild_s:6.2f} s (memory, from the database)")
    print(
        f"re-index unchanged   {reindex.seconds * 1000:6.1f} ms (one library, "
        f"{reindex.read} files read, 0 re-processed)"
    )
    print(
        f"search in-process    p50 {local['p50_ms']:6.2f} ms   p95 {local['p95_ms']:6.2f} ms "
        "(target < 20)"
    )
    print(f"search over HTTP     p50 {http['p50_ms']:6.2f} ms   p95 {http['p95_ms']:6.2f} ms")
    print(f"max RSS growth       {(rss_after - rss_before) / 1024:6.1f} MiB during the build")
    print("top hit 'skapa projekt':", sample.results[0].path, f"(total {sample.total})")
    print(
        json.dumps(
            {
                "bench": "search",
                "libraries": args.libraries,
                "documents": documents,
                "queries": len(QUERIES),
                "build_s": round(build_s, 2),
                "rebuild_s": round(rebuild_s, 2),
                "reindex_unchanged_ms": round(reindex.seconds * 1000, 1),
                "in_process": local,
                "http": http,
                "rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
