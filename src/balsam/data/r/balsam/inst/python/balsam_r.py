"""The Python half of Balsam's R package ``balsam`` (see its R/balsam.R).

R hands data frames over column by column as raw bytes (little-endian numbers,
NUL-terminated UTF-8 strings, one byte per row for "missing"), so no NumPy
conversion of reticulate's is involved; Parquet is read and written with pyarrow
and the bucket reached with boto3, both from the workspace's own environment.
Every function takes the connection (endpoint, keys, region) from R at each call,
so a notebook that changes its environment variables is followed.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

_clients: dict[tuple[str, str, str, str], Any] = {}
_http = urllib3.PoolManager()


def _client(conn: dict[str, str]) -> Any:
    key = (conn["endpoint"], conn["key"], conn["secret"], conn["region"])
    if key not in _clients:
        _clients[key] = boto3.client(
            "s3",
            endpoint_url=conn["endpoint"],
            aws_access_key_id=conn["key"],
            aws_secret_access_key=conn["secret"],
            region_name=conn["region"],
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )
    return _clients[key]


# -- objects ---------------------------------------------------------------------------


def put(
    conn: dict[str, str],
    bucket: str,
    key: str,
    body: bytes | bytearray,
    tags: dict[str, str],
    metadata: dict[str, str],
    content_type: str,
) -> None:
    extra: dict[str, Any] = {"Metadata": {str(k): str(v) for k, v in metadata.items()}}
    if tags:
        extra["Tagging"] = urlencode({str(k): str(v) for k, v in tags.items()})
    if content_type:
        extra["ContentType"] = content_type
    _client(conn).put_object(Bucket=bucket, Key=key, Body=bytes(body), **extra)


def get(conn: dict[str, str], bucket: str, key: str) -> bytearray:
    answer = _client(conn).get_object(Bucket=bucket, Key=key)
    return bytearray(answer["Body"].read())


def head(conn: dict[str, str], bucket: str, key: str) -> dict[str, str] | None:
    """The object's HTTP headers (lower-case names, x-amz-meta-* included); None if
    there is no such object."""
    client = _client(conn)
    try:
        answer = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return {str(k).lower(): str(v) for k, v in answer["ResponseMetadata"]["HTTPHeaders"].items()}


def get_tags(conn: dict[str, str], bucket: str, key: str) -> dict[str, str]:
    answer = _client(conn).get_object_tagging(Bucket=bucket, Key=key)
    return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}


def put_tags(conn: dict[str, str], bucket: str, key: str, tags: dict[str, str]) -> None:
    tag_set = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    _client(conn).put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})


def buckets(conn: dict[str, str]) -> list[tuple[str, str]]:
    answer = _client(conn).list_buckets()
    return [(b["Name"], b["CreationDate"].isoformat()) for b in answer.get("Buckets", [])]


def request(
    conn: dict[str, str],
    verb: str,
    bucket: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes | bytearray,
) -> tuple[int, dict[str, str], bytearray]:
    """One signed S3 request (the aws.s3 package's ``s3HTTP``): status, headers, body."""
    url = conn["endpoint"].rstrip("/")
    if bucket:
        url += "/" + quote(bucket, safe="")
    if path:
        url += "/" + quote(path.lstrip("/"), safe="/~")
    if query:
        url += "?" + "&".join(
            quote(str(k), safe="~") + "=" + quote(str(v), safe="~") for k, v in query.items()
        )
    data = bytes(body)
    prepared = AWSRequest(method=verb.upper(), url=url, data=data, headers=dict(headers))
    prepared.headers["x-amz-content-sha256"] = hashlib.sha256(data).hexdigest()
    credentials = Credentials(conn["key"], conn["secret"])
    S3SigV4Auth(credentials, "s3", conn["region"]).add_auth(prepared)
    answer = _http.request(
        verb.upper(), url, body=data or None, headers=dict(prepared.headers), retries=False
    )
    return answer.status, {k.lower(): v for k, v in answer.headers.items()}, bytearray(answer.data)


# -- data frames <-> Parquet -------------------------------------------------------------


def _mask(missing: bytes | bytearray) -> np.ndarray:
    return np.frombuffer(bytes(missing), dtype=np.uint8).astype(bool)


def _strings(n: int, data: bytes, missing: np.ndarray) -> pa.Array:
    """``n`` NUL-terminated UTF-8 strings (R's writeBin of a character vector)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 0)
    if len(ends) != n:
        raise ValueError("a string column holds a NUL byte")
    lengths = np.diff(np.concatenate([[-1], ends])) - 1
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = data.replace(b"\0", b"")
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(values))
    array.validate(full=True)  # invalid UTF-8 is refused here, not in a reader later
    return _with_nulls(array, missing).cast(pa.string())


def _with_nulls(array: pa.Array, missing: np.ndarray) -> pa.Array:
    if not missing.any():
        return array
    return pc.if_else(pa.array(missing), pa.scalar(None, array.type), array)


def _column(kind: str, n: int, data: bytes | bytearray, missing: bytes | bytearray) -> pa.Array:
    """One R column as an Arrow array. ``kind``: double, integer, logical, character,
    factor (strings), Date (days as double), POSIXct (seconds as double, UTC)."""
    mask, raw = _mask(missing), bytes(data)
    if kind == "character" or kind == "factor":
        array = _strings(n, raw, mask)
        return array.dictionary_encode() if kind == "factor" else array
    if kind == "integer":
        return pa.array(np.frombuffer(raw, "<i4"), mask=mask)
    if kind == "logical":
        return pa.array(np.frombuffer(raw, "<i4") != 0, mask=mask)
    values = np.frombuffer(raw, "<f8")
    if kind == "Date":
        days = np.where(mask, 0, np.floor(np.nan_to_num(values))).astype(np.int32)
        return pa.array(days, mask=mask).cast(pa.date32())
    if kind == "POSIXct":
        micros = np.where(mask, 0, np.round(np.nan_to_num(values) * 1e6)).astype(np.int64)
        return pa.array(micros, mask=mask).cast(pa.timestamp("us", tz="UTC"))
    if kind == "double":
        return pa.array(values, mask=mask)
    raise ValueError(f"cannot store a column of type {kind}")


def encode(
    names: list[str],
    kinds: list[str],
    n: int,
    datas: list[bytes | bytearray],
    missings: list[bytes | bytearray],
) -> bytearray:
    """A Parquet file of the columns R handed over."""
    if isinstance(names, str):  # reticulate passes a one-element vector as a scalar
        names, kinds, datas, missings = [names], [kinds], [datas], [missings]
    columns = [_column(k, n, d, m) for k, d, m in zip(kinds, datas, missings, strict=True)]
    out = io.BytesIO()
    pq.write_table(pa.table(dict(zip(names, columns, strict=True))), out)
    return bytearray(out.getbuffer())


def _decoded(column: pa.ChunkedArray) -> tuple[str, bytearray, bytearray, list[str]]:
    """(kind, data, missing, levels) of one column, for R to read back with readBin."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    missing = bytearray(np.asarray(array.is_null().to_numpy(zero_copy_only=False), np.uint8))
    kind_of = array.type
    if pa.types.is_dictionary(kind_of):
        levels = [str(v) for v in array.dictionary.to_pylist()]
        codes = pc.fill_null(array.indices.cast(pa.int32()), -1).to_numpy() + 1
        return "factor", bytearray(codes.astype("<i4").tobytes()), missing, levels
    if pa.types.is_boolean(kind_of):
        values = pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype("<i4")
        return "logical", bytearray(values.tobytes()), missing, []
    if pa.types.is_integer(kind_of) and _fits_int32(array):
        values = pc.fill_null(array.cast(pa.int32()), 0).to_numpy()
        return "integer", bytearray(values.astype("<i4").tobytes()), missing, []
    if (
        pa.types.is_integer(kind_of)
        or pa.types.is_floating(kind_of)
        or pa.types.is_decimal(kind_of)
    ):
        values = pc.fill_null(array.cast(pa.float64()), 0.0).to_numpy()
        return "double", bytearray(values.astype("<f8").tobytes()), missing, []
    if pa.types.is_date(kind_of):
        days = pc.fill_null(array.cast(pa.date32()).cast(pa.int32()), 0).to_numpy()
        return "Date", bytearray(days.astype("<f8").tobytes()), missing, []
    if pa.types.is_timestamp(kind_of):
        micros = array.cast(pa.timestamp("us", tz=kind_of.tz)).cast(pa.int64())
        seconds = pc.fill_null(micros, 0).to_numpy().astype("<f8") / 1e6
        return "POSIXct", bytearray(seconds.tobytes()), missing, []
    text = pc.fill_null(array.cast(pa.large_string()), "")
    # NUL-terminated, as R's readBin(what = "character") reads them.
    joined = "\0".join(text.to_pylist()) + "\0" if len(text) else ""
    return "character", bytearray(joined.encode()), missing, []


def _fits_int32(array: pa.Array) -> bool:
    if array.type.bit_width < 32 or (
        array.type.bit_width == 32 and pa.types.is_signed_integer(array.type)
    ):
        return True
    low, high = pc.min_max(array).values()
    return (low.as_py() is None) or (low.as_py() > -(2**31) and high.as_py() < 2**31)


def decode(
    body: bytes | bytearray,
) -> tuple[int, list[str], list[tuple[str, bytearray, bytearray, list[str]]]]:
    """(rows, names, columns) of a Parquet file, each column as :func:`_decoded` gives."""
    table = pq.read_table(io.BytesIO(bytes(body)))
    return table.num_rows, table.column_names, [_decoded(c) for c in table.columns]
