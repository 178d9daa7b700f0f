"""What an API call costs with the identity provider's access token, against the same
call with a personal token, in one run.

A personal token (``blsm_…``) is one indexed lookup of its SHA-256; a provider token
(an RS256 JWT) is checked against the provider's published key (signature, issuer,
audience, times) and mapped to its user through the account link. Both call
``GET /api/v1/users/me`` on a real Balsam (uvicorn, SQLite) over one keep-alive
connection each, alternating which goes first; the provider is npm's oidc-provider
(the tests' harness, started with node). Prints medians, p95s and the ratio
provider/personal, then a JSON line.

    PYTHONPATH=src .venv/bin/python bench/bench_oidc_tokens.py --calls 500 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import httpx
from _platform import free_port, platform

from tests.fixtures.oidc import AUDIENCE, running_oidc_provider

ACCOUNT = "bench-oidc"


def _times(client: httpx.Client, headers: dict[str, str], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        answer = client.get("/api/v1/users/me", headers=headers)
        out.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    accounts = {ACCOUNT: {"preferred_username": ACCOUNT, "groups": [], "password": "x" * 16}}
    with running_oidc_provider(accounts=accounts) as provider:
        port = free_port()
        oidc = {
            "issuer": provider.issuer,
            "client_id": "balsam",
            "audiences": [AUDIENCE],
        }
        with platform(port=port, oidc=oidc) as site:
            token = provider.user_access_token(ACCOUNT)
            kinds = {
                "personal": site.headers,
                "provider": {"Authorization": f"Bearer {token}"},
            }
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            clients = {kind: httpx.Client(base_url=site.url, timeout=30) for kind in kinds}
            for client, headers in zip(clients.values(), kinds.values(), strict=True):
                _times(client, headers, 20)  # warm: the first provider call makes the user
            for round_ in range(args.rounds):
                order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    times[kind] += _times(clients[kind], kinds[kind], args.calls)
            for client in clients.values():
                client.close()
    result = {}
    for kind, values in times.items():
        median = statistics.median(values) * 1000
        p95 = statistics.quantiles(values, n=20)[18] * 1000
        result[kind] = {"median_ms": round(median, 3), "p95_ms": round(p95, 3)}
        print(f"{kind:9} median {median:7.3f} ms   p95 {p95:7.3f} ms   ({len(values)} calls)")
    ratio = result["provider"]["median_ms"] / result["personal"]["median_ms"]
    print(f"provider / personal (median): {ratio:.2f}")
    print(json.dumps({"bench": "oidc_tokens", **result, "ratio_median": round(ratio, 2)}))


if __name__ == "__main__":
    main()
