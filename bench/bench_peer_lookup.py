"""What the per-request socket lookup costs a local client and a remote one, in one run.

Balsam asks the kernel who owns a client's socket on every request that carries a
session (``balsam.web.peers.peer_address``). A local client's socket is found by the
first netlink query; a remote client's is in no table, so the lookup asks once per
network interface and address family before it concludes "remote". This bench times
both on this machine, alternating which goes first, and prints medians, p95s and the
ratio remote/local, then a JSON line.

    PYTHONPATH=src .venv/bin/python bench/bench_peer_lookup.py --lookups 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from balsam.web.peers import peer_address

#: A documentation address (RFC 5737): never a socket of this host, as a remote
#: client's address is not.
REMOTE = ("192.0.2.10", 40000)


def _times(lookup: Callable[[], str], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        lookup()
        out.append(time.perf_counter() - start)
    return out


def _host_address() -> str:
    """An address of this host's network card (where Balsam would listen for remote
    browsers): the source of a route to a documentation address, nothing is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        raise SystemExit("this host has no non-loopback address to listen on")
    return address


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    # Balsam listening on the network: on this host's own (non-loopback) address.
    server = socket.socket()
    server.bind((_host_address(), 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    local_end = client.getsockname()
    server_end = accepted.getsockname()
    # The server's own listening address stands for the address Balsam listens on; a
    # remote peer is looked up against it as uvicorn's scope would give it.
    lookups = {
        "local": lambda: peer_address(local_end, server_end),
        "remote": lambda: peer_address(REMOTE, server_end),
    }
    assert lookups["remote"]() == REMOTE[0], "the remote address was found as a socket"
    times: dict[str, list[float]] = {"local": [], "remote": []}
    for round_ in range(args.rounds):
        order = ["local", "remote"] if round_ % 2 == 0 else ["remote", "local"]
        for name in order:
            times[name] += _times(lookups[name], args.lookups)
    for sock in (client, accepted, server):
        sock.close()

    interfaces = len(socket.if_nameindex())
    result = {
        name: {"median_us": statistics.median(t) * 1e6, "p95_us": _p95(t) * 1e6}
        for name, t in times.items()
    }
    ratio = result["remote"]["median_us"] / result["local"]["median_us"]
    print(f"interfaces: {interfaces} (plus the any-interface query)")
    for name, r in result.items():
        print(f"{name:7s} median {r['median_us']:7.1f} µs   p95 {r['p95_us']:7.1f} µs")
    print(f"remote/local (median): {ratio:.2f}")
    print(
        json.dumps(
            {
                "bench": "peer_lookup",
                "interfaces": interfaces,
                **result,
                "ratio_remote_local": ratio,
            }
        )
    )


if __name__ == "__main__":
    main()
