"""Run one SQL query on a PostgreSQL connection and write its result as Parquet.

Read-only (``BEGIN READ ONLY``, and the query runs as one server-side cursor, so it
is a single statement), bounded in time (``statement_timeout`` for every fetch and
a deadline for the whole), in rows and in bytes written; memory holds one batch of
rows (a server-side cursor, ``FETCH`` of ``batch_rows``) and one Parquet row group.
Column types come from PostgreSQL's: integers, floats, booleans, numerics of known
precision, dates, times, timestamps and bytea keep theirs; everything else (text,
uuid, json, arrays, ...) becomes text.
"""

from __future__ import annotations

import decimal
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from balsam.domain.data.connections.query_types import (
    PostgresTarget,
    QueryFailed,
    QueryLimits,
    QueryResult,
)
from balsam.errors import N_, PayloadTooLarge, ProviderError

__all__ = ["PostgresTarget", "QueryFailed", "QueryLimits", "QueryResult", "run_query_to_parquet"]

_DEFAULT_LIMITS = QueryLimits()


def run_query_to_parquet(
    target: PostgresTarget, query: str, sink: IO[bytes], limits: QueryLimits = _DEFAULT_LIMITS
) -> QueryResult:
    """Run ``query`` read-only on ``target`` and write the rows to ``sink`` as one
    Parquet file. Raises :class:`QueryFailed` (400) when PostgreSQL refuses the
    query, :class:`ProviderError` (502) when the server cannot be reached, and
    :class:`PayloadTooLarge` (413) past ``limits.max_rows`` or ``max_bytes``; after
    an error ``sink`` holds a partial file the caller must discard."""
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        with _connect(target, limits) as conn:
            conn.read_only = True
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    [str(int(limits.timeout_seconds * 1000))],
                )
                name = f"balsam_import_{secrets.token_hex(4)}"
                with conn.cursor(name=name) as cursor:
                    cursor.execute(query)  # type: ignore[call-overload]
                    return _write(cursor, sink, limits, deadline)
    except psycopg.OperationalError as exc:
        if exc.sqlstate is None:  # no answer from the server at all
            raise ProviderError(
                N_("The database cannot be reached: %(why)s"),
                params={"why": _first_line(exc)},
            ) from None
        raise _failed(exc) from None
    except psycopg.Error as exc:
        raise _failed(exc) from None


def _connect(target: PostgresTarget, limits: QueryLimits) -> psycopg.Connection[Any]:
    # Every parameter explicit, so nothing comes from the server's own environment
    # (PGPASSWORD, ~/.pgpass) or a service file.
    return psycopg.connect(
        host=target.host,
        port=target.port,
        dbname=target.database,
        user=target.user,
        password=target.password,
        passfile=os.devnull,
        connect_timeout=max(1, min(30, int(limits.timeout_seconds))),
        application_name="balsam-import",
    )


def _write(
    cursor: psycopg.ServerCursor[Any], sink: IO[bytes], limits: QueryLimits, deadline: float
) -> QueryResult:
    rows = cursor.fetchmany(limits.batch_rows)
    description = cursor.description or []
    columns = _unique([c.name for c in description])
    converters = [_arrow_type(c) for c in description]
    schema = pa.schema([pa.field(n, t) for n, (t, _) in zip(columns, converters, strict=True)])
    counted = _CountingSink(sink)
    total = 0
    with pq.ParquetWriter(counted, schema) as writer:  # type: ignore[arg-type]
        while True:
            total += len(rows)
            if total > limits.max_rows:
                raise PayloadTooLarge(
                    N_("The query returns more than %(rows)s rows."),
                    params={"rows": limits.max_rows},
                )
            if rows or total == 0:
                writer.write_table(_batch(schema, converters, rows))
            if counted.count > limits.max_bytes:
                raise _too_big(limits)
            if len(rows) < limits.batch_rows:
                break
            if time.monotonic() > deadline:
                raise QueryFailed(N_("The query took too long."))
            rows = cursor.fetchmany(limits.batch_rows)
    if counted.count > limits.max_bytes:
        raise _too_big(limits)
    return QueryResult(rows=total, bytes=counted.count, columns=columns)


def _batch(
    schema: pa.Schema,
    converters: Sequence[tuple[pa.DataType, Callable[[Any], Any]]],
    rows: Sequence[Sequence[Any]],
) -> pa.Table:
    arrays = [
        pa.array([None if r[i] is None else convert(r[i]) for r in rows], type=kind)
        for i, (kind, convert) in enumerate(converters)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


_BY_OID: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),  # oid
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    17: pa.binary(),
}


def _arrow_type(column: Any) -> tuple[pa.DataType, Callable[[Any], Any]]:
    oid = column.type_code
    if oid in _BY_OID:
        return _BY_OID[oid], (bytes if oid == 17 else _same)
    if oid == 1700 and column.precision and column.precision <= 38:
        return pa.decimal128(column.precision, column.scale or 0), _decimal
    return pa.string(), _text


def _decimal(value: decimal.Decimal) -> decimal.Decimal | None:
    return value if value.is_finite() else None  # NaN has no decimal128


def _unique(names: list[str]) -> list[str]:
    """Column names as given, with a suffix where one repeats (Parquet needs unique)."""
    taken: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 0
        while unique in taken:
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique)
        out.append(unique)
    return out


class _CountingSink:
    """What ParquetWriter writes into: passes bytes on and counts them."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink, self.count, self.closed = sink, 0, False

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self.closed = True  # the caller closes its own sink

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


def _too_big(limits: QueryLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        N_("The query's result is larger than %(bytes)s bytes."),
        params={"bytes": limits.max_bytes},
    )


def _failed(exc: psycopg.Error) -> QueryFailed:
    return QueryFailed(
        N_("The database refused the query: %(why)s"), params={"why": _first_line(exc)}
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
