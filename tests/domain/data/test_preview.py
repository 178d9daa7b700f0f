"""Previews read only what they need: the head of a text, a Parquet file's footer and
first pages (counted on the bytes of a real file)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from balsam.domain.data.preview import HEAD_BYTES, preview
from balsam.providers.storage.objects import ObjectInfo


def _reader(data: bytes) -> tuple[list[int], object]:
    read: list[int] = []

    def read_range(first: int, last: int) -> bytes:
        chunk = data[first : last + 1]
        read.append(len(chunk))
        return chunk

    return read, read_range


def _info(key: str, size: int) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, last_modified=datetime.now(UTC))


def test_a_parquet_preview_reads_a_small_part_of_a_large_file() -> None:
    rows = 2_000_000
    table = pa.table({"i": pa.array(range(rows), pa.int64()), "x": pa.array([1.5] * rows)})
    out = pa.BufferOutputStream()
    pq.write_table(table, out, row_group_size=500_000, compression="none")
    data = out.getvalue().to_pybytes()
    read, read_range = _reader(data)
    shown = preview(_info("a.parquet", len(data)), read_range)  # type: ignore[arg-type]
    assert shown.total_rows == rows and len(shown.rows) == 100
    assert sum(read) < len(data) / 4, (sum(read), len(data))


def test_a_text_preview_reads_its_head_only() -> None:
    data = ("ord\n" * 200_000).encode()
    read, read_range = _reader(data)
    shown = preview(_info("a.txt", len(data)), read_range)  # type: ignore[arg-type]
    assert sum(read) == HEAD_BYTES and shown.truncated
