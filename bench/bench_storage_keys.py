"""Scoped storage keys as the key count grows: mint + revoke with few keys versus many.

Starts its own embedded SeaweedFS (``weed mini``) in a temporary directory,
times ``create_key`` and ``revoke_key`` of :class:`S3IamStorage` (median of
``--runs``) with no other IAM users, fills the server with ``--users`` more
keys, and times them again in the same run. It also times revoking with a
fresh provider that has never seen the key (it must list every user's keys)
against the provider that minted it (it remembers the owner).

Prints the medians, the ratios many/few and cold/warm, and a final JSON line.
There is no target: the numbers show how SeaweedFS's IAM writes scale, which
decides how many keys an embedded deployment can hold comfortably.

    PYTHONPATH=src .venv/bin/python bench/bench_storage_keys.py --users 100 --runs 5
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from balsam.embedded import SeaweedPorts, SeaweedServer
from balsam.providers.storage.s3iam import S3IamStorage

BUCKET = "bench-keys"


def timed_revoke(storage: S3IamStorage, access_key: str) -> float:
    start = time.perf_counter()
    storage.revoke_key(access_key)
    return time.perf_counter() - start


def mint_and_revoke(storage: S3IamStorage, runs: int) -> tuple[float, float]:
    """Median seconds of create_key and of revoke_key (warm: the minting provider)."""
    minted, revoked = [], []
    for _ in range(runs):
        start = time.perf_counter()
        key = storage.create_key(BUCKET, label="bench")
        minted.append(time.perf_counter() - start)
        revoked.append(timed_revoke(storage, key.access_key))
    return statistics.median(minted), statistics.median(revoked)


def cold_revoke(server: SeaweedServer, storage: S3IamStorage, secret: str, runs: int) -> float:
    """Median seconds of revoke_key by a provider that has never seen the key."""
    times = []
    for _ in range(runs):
        key = storage.create_key(BUCKET, label="bench")
        cold = S3IamStorage(server.endpoint_url, "us-east-1", server.admin_access_key, secret)
        try:
            times.append(timed_revoke(cold, key.access_key))
        finally:
            cold.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=100, help="keys added between rounds")
    parser.add_argument("--runs", type=int, default=5, help="timed mint+revoke per round")
    args = parser.parse_args()
    access, secret = f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30)
    with tempfile.TemporaryDirectory() as scratch:
        server = SeaweedServer(Path(scratch), ports=SeaweedPorts.pick_free(),
                               admin_access_key=access, admin_secret_key=secret)
        server.start()
        try:
            storage = S3IamStorage(server.endpoint_url, "us-east-1", access, secret)
            storage.create_bucket(BUCKET)
            few = mint_and_revoke(storage, args.runs)
            for _ in range(args.users):
                storage.create_key(BUCKET, label="filler")
            many = mint_and_revoke(storage, args.runs)
            cold = cold_revoke(server, storage, secret, args.runs)
            storage.close()
        finally:
            server.stop()
    result = {
        "users": args.users, "runs": args.runs,
        "create_key_few_s": round(few[0], 4), "create_key_many_s": round(many[0], 4),
        "revoke_few_s": round(few[1], 4), "revoke_many_s": round(many[1], 4),
        "revoke_cold_many_s": round(cold, 4),
        "create_ratio_many_few": round(many[0] / few[0], 1),
        "revoke_ratio_cold_warm": round(cold / many[1], 1),
    }
    print(f"create_key: {few[0]:.3f} s with no other keys, {many[0]:.3f} s with "
          f"{args.users}: x{result['create_ratio_many_few']}")
    print(f"revoke_key: {few[1]:.3f} s / {many[1]:.3f} s (warm); cold provider {cold:.3f} s: "
          f"x{result['revoke_ratio_cold_warm']} of warm")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
