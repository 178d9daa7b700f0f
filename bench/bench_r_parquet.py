"""R Parquet round trip through Balsam's R package vs Python's pyarrow, same run.

Starts its own embedded SeaweedFS, a bucket and a key scoped to it, builds (or reuses)
the R template's environment, then times, alternating which goes first:

* R: ``balsam::write_parquet`` of a data frame of ``--rows`` rows (an integer, a double,
  a string and a logical column) to the bucket, and ``balsam::read_parquet`` back;
* Python, in the same environment: ``pyarrow`` from a pandas frame of the same columns,
  ``put_object``, ``get_object``, and back to pandas.

R runs with what a workspace's R kernel runs with (its kernel spec's environment,
``r_environment.KERNEL_ENV``: heap growth and glibc's reuse of freed memory);
``--r-defaults`` leaves R's and glibc's defaults. Each side runs in one process per
round (R's startup, reticulate's and pyarrow's first use, and the S3 client's first
request are not timed). Prints medians, the ratio R/Python (target <= 2) and a JSON
line.

    PYTHONPATH=src .venv/bin/python bench/bench_r_parquet.py --rows 1000000 --rounds 9
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from balsam.domain.workspaces.templates import load_templates
from balsam.embedded import SeaweedPorts, SeaweedServer
from balsam.providers.storage.s3iam import S3IamStorage
from balsam.providers.workspaces.environments import EnvironmentBuilder
from balsam.providers.workspaces.r_environment import KERNEL_ENV, LIBRARY

TARGET = 2.0
BUCKET = "bench-r-parquet"

R_ROUND = """
library(balsam)
n <- as.integer(commandArgs(trailingOnly = TRUE)[[1]])
set.seed(1)
df <- data.frame(i = sample.int(1000L, n, TRUE), x = runif(n),
                 s = sample(c("alfa", "beta", "gåmma", NA), n, TRUE),
                 b = sample(c(TRUE, FALSE, NA), n, TRUE), stringsAsFactors = FALSE)
invisible(balsam::read_parquet(balsam:::.parquet(df[1:10, ])))  # warm: reticulate, pyarrow
invisible(balsam::object_exists("r/none"))  # warm: the S3 client and its connection
t0 <- Sys.time(); write_parquet(df, "r/round.parquet")
t1 <- Sys.time(); back <- read_parquet("r/round.parquet"); t2 <- Sys.time()
stopifnot(nrow(back) == n, identical(back$s, df$s))
cat(sprintf('{"write": %f, "read": %f}\\n', as.numeric(t1 - t0, units = "secs"),
            as.numeric(t2 - t1, units = "secs")))
"""

PY_ROUND = """
import io, json, os, sys, time
import boto3, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
n = int(sys.argv[1])
rng = np.random.default_rng(1)
df = pd.DataFrame({"i": rng.integers(1, 1000, n, dtype="int32"), "x": rng.random(n),
                   "s": pd.array(rng.choice(["alfa", "beta", "gåmma", None], n), dtype="str"),
                   "b": pd.array(rng.choice([True, False, None], n), dtype="boolean")})
s3 = boto3.client("s3")
pa.Table.from_pandas(df.head(10))  # warm
s3.list_objects_v2(Bucket=os.environ["BALSAM_BUCKET"], MaxKeys=1)  # the client's connection
t0 = time.perf_counter()
out = io.BytesIO(); pq.write_table(pa.Table.from_pandas(df, preserve_index=False), out)
s3.put_object(Bucket=os.environ["BALSAM_BUCKET"], Key="py/round.parquet", Body=out.getvalue())
t1 = time.perf_counter()
body = s3.get_object(Bucket=os.environ["BALSAM_BUCKET"], Key="py/round.parquet")["Body"].read()
back = pq.read_table(io.BytesIO(body)).to_pandas()
t2 = time.perf_counter()
assert len(back) == n
print(json.dumps({"write": t1 - t0, "read": t2 - t1}))
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--r-defaults",
        action="store_true",
        help="run R with its default memory settings, not the R kernel's (KERNEL_ENV)",
    )
    parser.add_argument("--environments", type=Path, default=Path(".cache/environments"))
    args = parser.parse_args(argv)

    spec = load_templates(None)["r"].environment
    env_path = EnvironmentBuilder(args.environments.resolve()).ensure(spec, print)
    access_key, secret_key = "BENCH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    with tempfile.TemporaryDirectory() as root:
        server = SeaweedServer(
            Path(root) / "seaweed",
            ports=SeaweedPorts.pick_free(),
            admin_access_key=access_key,
            admin_secret_key=secret_key,
        )
        with server:
            storage = S3IamStorage(server.endpoint_url, "us-east-1", access_key, secret_key)
            storage.create_bucket(BUCKET)
            key = storage.create_key(BUCKET, label="bench")
            environ = {
                "PATH": f"{env_path / 'bin'}:/usr/bin:/bin",
                "HOME": root,
                "LANG": "C.UTF-8",
                "AWS_ENDPOINT_URL": server.endpoint_url,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": key.access_key,
                "AWS_SECRET_ACCESS_KEY": key.secret_key,
                "BALSAM_BUCKET": BUCKET,
                "R_LIBS": str(env_path / LIBRARY),
                "RETICULATE_PYTHON": str(env_path / "bin" / "python"),
            }
            r_environ = environ if args.r_defaults else {**environ, **KERNEL_ENV}
            sides = {
                "r": ["Rscript", "-e", R_ROUND, str(args.rows)],
                "python": [str(env_path / "bin" / "python"), "-c", PY_ROUND, str(args.rows)],
            }
            times: dict[str, list[float]] = {"r": [], "python": []}
            for round_ in range(args.rounds):
                for side in ("r", "python") if round_ % 2 == 0 else ("python", "r"):
                    done = subprocess.run(
                        sides[side],
                        env=r_environ if side == "r" else environ,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if done.returncode != 0:
                        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
                    found = json.loads(done.stdout.strip().splitlines()[-1])
                    times[side].append(found["write"] + found["read"])
    medians = {side: statistics.median(t) for side, t in times.items()}
    ratio = medians["r"] / medians["python"]
    print(f"rows: {args.rows:,}, rounds: {args.rounds}, cores: {os.cpu_count()}")
    for side, median in medians.items():
        print(f"{side:7s} write + read median {median:.3f} s   all: "
              + ", ".join(f"{t:.3f}" for t in times[side]))  # fmt: skip
    print(f"R/Python: {ratio:.2f} (target <= {TARGET})")
    print(json.dumps({"bench": "r_parquet", "rows": args.rows, "r_defaults": args.r_defaults,
                      **medians, "ratio": ratio}))  # fmt: skip


if __name__ == "__main__":
    main()
