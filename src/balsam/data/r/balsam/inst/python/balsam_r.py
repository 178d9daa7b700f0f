"""The Python half of Balsam's R package ``balsam`` (see its R/balsam.R).

R hands data frames over column by column as raw bytes (little-endian numbers, one
byte per row for "missing"; strings as a dictionary: the distinct values NUL-terminated
in UTF-8 and a 1-based int32 code per row, 0 for missing), so no NumPy
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
    headers = answer["ResponseMetadata"]["HTTPHeaders"].items()
    # The S3 server's own bookkeeping (SeaweedFS: seaweed-*, x-amz-tagging-status) is
    # not the object's; what aws.s3's head_object shows is.
    return {
        str(k).lower(): str(v)
        for k, v in headers
        if not str(k).lower().startswith(("seaweed-", "x-amz-tagging-status"))
    }


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


#: R's NA for integers and logicals (INT_MIN), and the low word of its NA for doubles
#: (a NaN whose lower 32 bits are 1954; other NaNs are values, as R's is.nan says).
NA_INTEGER = -(2**31)
_NA_LOW_WORD = 1954
NA_REAL = np.array([0x7FF00000000007A2], dtype="<u8").view("<f8")[0]


def _na_reals(values: np.ndarray) -> np.ndarray:
    return np.isnan(values) & ((values.view("<u8") & 0xFFFFFFFF) == _NA_LOW_WORD)


def _masked(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(values, mask=missing if missing.any() else None)


def _strings(n: int, data: bytes) -> pa.Array:
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
    return array.cast(pa.string())


def _column(
    kind: str, n: int, data: bytes | bytearray, levels: bytes | bytearray, n_levels: int
) -> pa.Array:
    """One R column as an Arrow array. ``kind``: double, integer, logical, character
    and factor (``levels`` and codes), Date (days as double), POSIXct (seconds as
    double, UTC). Missing values are R's own NAs."""
    raw = bytes(data)
    if kind == "character" or kind == "factor":
        codes = np.frombuffer(raw, "<i4")
        missing = codes == NA_INTEGER
        codes = np.where(missing, 1, codes) - 1
        if len(codes) and (codes.min() < 0 or codes.max() >= n_levels):
            raise ValueError("a string column's codes do not match its values")
        indices = _masked(codes.astype(np.int32), missing)
        array = pa.DictionaryArray.from_arrays(indices, _strings(n_levels, bytes(levels)))
        return array if kind == "factor" else array.cast(pa.string())
    if kind == "integer" or kind == "logical":
        values = np.frombuffer(raw, "<i4")
        return _masked(values if kind == "integer" else values != 0, values == NA_INTEGER)
    values = np.frombuffer(raw, "<f8")
    missing = _na_reals(values)
    if kind == "Date":
        days = np.where(missing, 0, np.floor(np.nan_to_num(values))).astype(np.int32)
        return _masked(days, missing).cast(pa.date32())
    if kind == "POSIXct":
        micros = np.where(missing, 0, np.round(np.nan_to_num(values) * 1e6)).astype(np.int64)
        return _masked(micros, missing).cast(pa.timestamp("us", tz="UTC"))
    if kind == "double":
        return _masked(values, missing)
    raise ValueError(f"cannot store a column of type {kind}")


def _one(value: Any) -> list[Any]:
    """reticulate passes a one-element vector as a scalar."""
    return value if isinstance(value, list) else [value]


def encode(
    names: list[str],
    kinds: list[str],
    n: int,
    datas: list[bytes | bytearray],
    levels: list[bytes | bytearray],
    n_levels: list[int],
) -> bytearray:
    """A Parquet file of the columns R handed over."""
    parts = zip(_one(kinds), _one(datas), _one(levels), _one(n_levels), strict=True)
    columns = [_column(kind, n, data, lv, int(count)) for kind, data, lv, count in parts]
    out = io.BytesIO()
    pq.write_table(pa.table(dict(zip(_one(names), columns, strict=True))), out)
    return bytearray(out.getbuffer())


def put_frame(
    conn: dict[str, str],
    bucket: str,
    key: str,
    names: list[str],
    kinds: list[str],
    n: int,
    datas: list[bytes | bytearray],
    levels: list[bytes | bytearray],
    n_levels: list[int],
    tags: dict[str, str],
    metadata: dict[str, str],
) -> None:
    """:func:`encode` and :func:`put` in one call: the file stays on this side."""
    body = encode(names, kinds, n, datas, levels, n_levels)
    put(conn, bucket, key, body, tags, metadata, "application/vnd.apache.parquet")


#: (kind, data, levels, number of levels) of a column, for R's readBin.
Decoded = tuple[str, bytearray, bytearray, int]


def _nul_terminated(strings: pa.Array) -> bytearray:
    """The strings, each followed by a NUL (R's readBin reads them so); NULs inside a
    string are dropped (R's strings cannot hold them)."""
    if len(strings) == 0:
        return bytearray()
    text = pc.replace_substring(pc.fill_null(strings.cast(pa.large_string()), ""), "\0", "")
    one = pa.LargeListArray.from_arrays(pa.array([0, len(text)], pa.int64()), text)
    joined = pc.binary_join(one, pa.scalar("\0", pa.large_string()))[0].as_buffer()
    return bytearray(joined.to_pybytes() + b"\0")


def _ints(array: pa.Array) -> bytearray:
    return bytearray(pc.fill_null(array, NA_INTEGER).to_numpy().astype("<i4").tobytes())


def _reals(array: pa.Array) -> bytearray:
    values = array.to_numpy(zero_copy_only=False).astype("<f8")
    if array.null_count:
        values[array.is_null().to_numpy(zero_copy_only=False)] = NA_REAL
    return bytearray(values.tobytes())


def _coded(kind: str, array: pa.Array) -> Decoded:
    """A string column as R's dictionary: distinct values and 1-based codes."""
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    codes = pc.add(array.indices.cast(pa.int32()), 1)
    return kind, _ints(codes), _nul_terminated(array.dictionary), len(array.dictionary)


def _is_text(kind_of: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of))


def _decoded(column: pa.ChunkedArray, text: bool = False) -> Decoded:
    """One column as R reads it back (:data:`Decoded`); nulls become R's NAs. ``text``:
    a string column the reader was asked to hand over as a dictionary (a character
    vector in R, where a stored dictionary is a factor)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind_of = array.type
    if pa.types.is_dictionary(kind_of):
        value_type = kind_of.value_type
        if _is_text(value_type):
            return _coded("character" if text else "factor", array)
        return _decoded(pa.chunked_array([array.cast(value_type)]))
    if pa.types.is_boolean(kind_of):
        return "logical", _ints(array.cast(pa.int32())), bytearray(), 0
    if pa.types.is_integer(kind_of) and _fits_int32(array):
        return "integer", _ints(array.cast(pa.int32())), bytearray(), 0
    if (
        pa.types.is_integer(kind_of)
        or pa.types.is_floating(kind_of)
        or pa.types.is_decimal(kind_of)
    ):
        return "double", _reals(array.cast(pa.float64())), bytearray(), 0
    if pa.types.is_date(kind_of):
        return (
            "Date",
            _reals(array.cast(pa.date32()).cast(pa.int32()).cast(pa.float64())),
            bytearray(),
            0,
        )
    if pa.types.is_timestamp(kind_of):
        micros = array.cast(pa.timestamp("us", tz=kind_of.tz)).cast(pa.int64())
        return "POSIXct", _reals(pc.divide(micros.cast(pa.float64()), 1e6)), bytearray(), 0
    if not _is_text(kind_of):
        array = array.cast(pa.large_string())
    return _coded("character", array)


def _fits_int32(array: pa.Array) -> bool:
    if array.type.bit_width < 32 or (
        array.type.bit_width == 32 and pa.types.is_signed_integer(array.type)
    ):
        return True
    low, high = pc.min_max(array).values()
    return (low.as_py() is None) or (low.as_py() > -(2**31) and high.as_py() < 2**31)


def decode(body: bytes | bytearray) -> tuple[int, list[str], list[Decoded]]:
    """(rows, names, columns) of a Parquet file, each column as :func:`_decoded` gives."""
    # String columns come as the file's own dictionaries (what R gets), not as one
    # string per row encoded again here.
    schema = pq.read_schema(pa.BufferReader(body))
    text = {field.name for field in schema if _is_text(field.type)}
    table = pq.read_table(pa.BufferReader(body), read_dictionary=sorted(text))
    columns = [
        _decoded(column, name in text)
        for name, column in zip(table.column_names, table.columns, strict=True)
    ]
    return table.num_rows, table.column_names, columns


def get_frame(conn: dict[str, str], bucket: str, key: str) -> tuple[int, list[str], list[Decoded]]:
    """:func:`get` and :func:`decode` in one call: the file stays on this side."""
    return decode(get(conn, bucket, key))
