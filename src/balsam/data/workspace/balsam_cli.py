"""``balsam data`` inside a workspace: the project's data with the workspace's own S3
key, without a login (docs/data.md, *From a terminal*).

Balsam puts this script on every local workspace's PATH as ``balsam``, run by the
workspace environment's Python in isolated mode (``-I``: no PYTHON* variables, no user
site, not the current folder), so it needs only what every template has: boto3 (and
pyarrow, when installed, for Parquet previews). It reaches exactly what the key does:
the workspace's own project's bucket. Writes go straight to S3, as a notebook's would,
so Balsam records no uploader for them; deletions are restorable like any other.

    balsam data ls :main/                 (':' or 'PROJECT:' with the workspace's project)
    balsam data cp result.csv :main/out/result.csv
    balsam data cp :main/in/data.csv -    (- prints)
    balsam data preview :main/in/data.csv
    balsam data rm :main/tmp/old.csv      (a folder: :main/tmp/old/)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Any

ROWS = 100
HEAD_BYTES = 256 * 1024
TEXT = (".txt", ".md", ".json", ".py", ".r", ".sql", ".xml", ".yaml", ".yml", ".log", ".sh")


class Refused(Exception):
    """A message for the user (exit status 1)."""


def _s3() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def _bucket() -> str:
    bucket = os.environ.get("BALSAM_BUCKET")
    if not bucket or not os.environ.get("AWS_ACCESS_KEY_ID"):
        raise Refused("Not in a Balsam workspace (no BALSAM_BUCKET or S3 key).")
    return bucket


def _remote(value: str) -> str:
    """The path in the workspace's project of ``PROJECT:PATH`` (PROJECT empty or the
    workspace's own)."""
    project, sep, path = value.partition(":")
    if not sep:
        raise Refused(f"{value!r} is not PROJECT:PATH (or :PATH for this project).")
    own = os.environ.get("BALSAM_PROJECT", "")
    if project not in ("", own):
        raise Refused(
            f"A workspace reaches its own project's data only ({own}); "
            "use `balsam login` on your own computer for other projects."
        )
    return path


def ls(location: str) -> None:
    s3, bucket, prefix = _s3(), _bucket(), _remote(location)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for folder in page.get("CommonPrefixes", []):
            print(f"{'':>12}  {'':19}  {folder['Prefix']}")
        for item in page.get("Contents", []):
            when = item["LastModified"].strftime("%Y-%m-%d %H:%M:%S")
            print(f"{item['Size']:>12}  {when}  {item['Key']}")


def cp(source: str, target: str) -> None:
    s3, bucket = _s3(), _bucket()
    if ":" in target and os.path.isfile(source):
        path = _remote(target)
        if not path or path.endswith("/"):
            raise Refused("Name the object: :FOLDER/NAME.")
        s3.upload_file(source, bucket, path)
        print(f"{path}: {os.path.getsize(source)} bytes")
        return
    if ":" not in source:
        raise Refused("One side is PROJECT:PATH, the other a file (or - to print).")
    path = _remote(source)
    if target == "-":
        s3.download_fileobj(bucket, path, sys.stdout.buffer)
    else:
        s3.download_file(bucket, path, target)


def rm(location: str) -> None:
    s3, bucket, path = _s3(), _bucket(), _remote(location)
    if not path:
        raise Refused("Name an object or a folder, not the whole bucket.")
    if path.endswith("/"):
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=path)
            for item in page.get("Contents", [])
        ]
    else:
        _head(s3, bucket, path)
        keys = [path]
    if not keys:
        raise Refused(f"Nothing at {path}.")
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    print(f"deleted {len(keys)} object(s); restorable from their versions in the portal")


def _head(s3: Any, bucket: str, path: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        answer: dict[str, Any] = s3.head_object(Bucket=bucket, Key=path)
    except ClientError as exc:
        raise Refused(f"No object {path}.") from exc
    return answer


def preview(location: str) -> None:
    s3, bucket, path = _s3(), _bucket(), _remote(location)
    size = int(_head(s3, bucket, path)["ContentLength"])
    name = path.lower()
    if name.endswith((".parquet", ".pq")):
        _parquet(bucket, path)
        return
    if not name.endswith((".csv", ".tsv", ".jsonl", ".ndjson", *TEXT)):
        raise Refused("No preview of this type here: download it (balsam data cp).")
    if size == 0:
        return
    last = min(size, HEAD_BYTES) - 1
    head = s3.get_object(Bucket=bucket, Key=path, Range=f"bytes=0-{last}")["Body"].read()
    lines = head.decode("utf-8", errors="replace").splitlines()
    if size > len(head) and lines:
        lines = lines[:-1]  # cut short
    if name.endswith((".csv", ".tsv")):
        try:
            delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = "\t" if name.endswith(".tsv") else ","
        for row in csv.reader(lines[: ROWS + 1], delimiter=delimiter):
            print("\t".join(row))
        return
    print("\n".join(lines[:ROWS] if name.endswith((".jsonl", ".ndjson")) else lines))


def _parquet(bucket: str, path: str) -> None:
    try:
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq
    except ImportError:
        raise Refused("pyarrow is not installed here: download the file instead.") from None
    import boto3

    credentials = boto3.session.Session().get_credentials()
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    fs = pafs.S3FileSystem(
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        endpoint_override=endpoint,
        scheme="https" if endpoint.startswith("https") else "http",
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    with fs.open_input_file(f"{bucket}/{path}") as source:
        parquet = pq.ParquetFile(source)
        print("\t".join(f"{f.name} ({f.type})" for f in parquet.schema_arrow))
        for batch in parquet.iter_batches(batch_size=ROWS):
            for row in batch.to_pylist():
                print("\t".join("" if v is None else str(v) for v in row.values()))
            break
        print(f"({parquet.metadata.num_rows} rows)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="balsam", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True)
    groups.add_parser("login", help="not needed in a workspace")
    data = groups.add_parser("data", help="the project's data: ls, cp, rm, preview")
    commands = data.add_subparsers(dest="command", required=True)
    for name in ("ls", "rm", "preview"):
        commands.add_parser(name).add_argument("location")
    copy = commands.add_parser("cp")
    copy.add_argument("source")
    copy.add_argument("target")
    args = parser.parse_args(argv)
    try:
        if args.group == "login":
            raise Refused("No login in a workspace: `balsam data` uses the workspace's own key.")
        if args.command == "cp":
            cp(args.source, args.target)
        else:
            {"ls": ls, "rm": rm, "preview": preview}[args.command](args.location)
    except Refused as exc:
        print(f"balsam: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # boto3's errors: one line, not a traceback
        print(f"balsam: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
