"""Previews read only what they need: the head of a text, a Parquet file's footer and
first pages (counted on the bytes of a real file)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

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


def _workbook(rows: list[list[object]], sheets: int = 1) -> bytes:
    import openpyxl

    # Not write_only: that leaves out the sheet's <dimension>, which Excel always
    # writes (without it openpyxl reads the whole sheet to find the size).
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Data"
    for row in rows:
        sheet.append(row)
    for n in range(1, sheets):
        book.create_sheet(f"Blad{n + 1}").append(["x"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_excel_shows_the_first_sheet_with_types_reading_a_part_of_it() -> None:
    rows: list[list[object]] = [["år", "värde", "andel", "datum", "namn"]]
    rows += [[2000 + i, i * 10, i / 4, date(2024, 1, 1 + i % 28), f"namn {i % 50}"]
             for i in range(40_000)]  # fmt: skip
    data = _workbook(rows, sheets=2)
    read, read_range = _reader(data)
    got = preview(_info("data/tabell.xlsx", len(data)), read_range)  # type: ignore[arg-type]
    assert got.kind == "excel" and got.sheets == ["Data", "Blad2"], got.error
    assert [c.name for c in got.columns] == ["år", "värde", "andel", "datum", "namn"]
    assert [c.type for c in got.columns] == ["integer", "integer", "double", "date", "string"]
    assert len(got.rows) == 100 and got.truncated
    assert got.rows[1] == ["2001", "10", "0.25", "2024-01-02", "namn 1"]
    # The zip's directory, the workbook, the shared strings and the sheet's beginning.
    assert sum(read) < len(data) / 4, (sum(read), len(data))


def test_a_broken_workbook_is_an_error_not_a_failure() -> None:
    data = b"PK\x03\x04 not really a zip"
    _, read_range = _reader(data)
    got = preview(_info("trasig.xlsx", len(data)), read_range)  # type: ignore[arg-type]
    assert got.kind == "excel" and got.error and not got.rows


def test_parquet_values_show_as_themselves_not_as_json() -> None:
    from decimal import Decimal

    table = pa.table(
        {
            "belopp": pa.array([Decimal("8.00")], pa.decimal128(10, 2)),
            "dag": pa.array([date(2024, 1, 25)]),
            "tid": pa.array([datetime(2026, 12, 3, 10, 10, 14, tzinfo=UTC)]),
            "lista": pa.array([[1, 2]]),
            "text": pa.array(["hej"]),
        }
    )
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    data = out.getvalue().to_pybytes()
    _, read_range = _reader(data)
    got = preview(_info("t.parquet", len(data)), read_range)  # type: ignore[arg-type]
    assert got.rows == [["8.00", "2024-01-25", "2026-12-03 10:10:14+00:00", "[1, 2]", "hej"]]


def test_a_column_that_unpacks_far_beyond_its_size_is_left_out() -> None:
    """A few KB holding a string of tens of MB (a preview bomb) is not decoded."""
    table = pa.table({"n": [1], "bomb": pa.array(["a" * (40 * 2**20)], pa.large_string())})
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression="zstd", use_dictionary=False)
    data = out.getvalue().to_pybytes()
    assert len(data) < 100_000
    _, read_range = _reader(data)
    got = preview(_info("bomb.parquet", len(data)), read_range)  # type: ignore[arg-type]
    assert got.rows == [["1", None]] and got.error and "bomb" in got.error


def test_long_values_are_cut_and_deep_json_is_not_a_failure() -> None:
    table = pa.table({"lång": ["x" * 5000]})
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    data = out.getvalue().to_pybytes()
    _, read_range = _reader(data)
    got = preview(_info("l.parquet", len(data)), read_range)  # type: ignore[arg-type]
    assert got.rows[0][0] is not None and len(got.rows[0][0]) == 1001
    deep = ("[" * 200_000 + "\n").encode()
    _, read_range = _reader(deep)
    shown = preview(_info("d.jsonl", len(deep)), read_range)  # type: ignore[arg-type]
    assert shown.kind == "jsonl" and shown.rows


def _zipped(members: dict[str, bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return out.getvalue()


def test_workbooks_openpyxl_would_parse_far_beyond_a_preview_are_refused() -> None:
    good = _workbook([["a"], [1]])
    sheet = "xl/worksheets/sheet1.xml"
    head = b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    wide = head + b'<dimension ref="A1"/><sheetData><row r="1">'
    wide += b'<c t="inlineStr"><is><t>x</t></is></c>' * 150_000 + b"</row></sheetData></worksheet>"
    undimensioned = head + b"<sheetData>" + b'<row><c t="n"><v>1</v></c></row>' * 5000
    undimensioned += b"</sheetData></worksheet>"
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + head[21:]
    doctype += b"</worksheet>"
    import zipfile

    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        base = {n: archive.read(n) for n in archive.namelist()}
    for body, why in ((wide, "too many cells"), (undimensioned, "size"), (doctype, "type")):
        data = _zipped({**base, sheet: body})
        _, read_range = _reader(data)
        got = preview(_info("x.xlsx", len(data)), read_range)  # type: ignore[arg-type]
        assert got.kind == "excel" and got.error and why in got.error, got.error
    styles = _zipped({**base, "xl/styles.xml": b"<x>" + b" " * (9 * 2**20) + b"</x>"})
    _, read_range = _reader(styles)
    got = preview(_info("s.xlsx", len(styles)), read_range)  # type: ignore[arg-type]
    assert got.error and "styles" in got.error
