"""Previews of objects: the schema and first rows of CSV, JSON lines, Parquet and Excel
workbooks (.xlsx, the first sheet), the beginning of text files; other types are
download-only.

Only what is needed is read, by ranged reads of the storage server: the first
:data:`HEAD_BYTES` of a CSV, JSON-lines or text object, and of a Parquet file its footer
and then the pages of its first row group that the first :data:`ROWS` rows need
(pyarrow over a file-like whose reads are ranged GETs, buffered, so memory stays
bounded whatever the object's size; the first buffer of every column is fetched at once,
concurrently, since one ranged GET after another per column is what took the time).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any
from xml.parsers import expat

from balsam.domain.data.schemas import DataPreview, PreviewColumn
from balsam.providers.storage.objects import ObjectInfo

ROWS = 100
HEAD_BYTES = 256 * 1024
#: Columns whose first rows a Parquet preview decodes (all are named in its schema).
MAX_COLUMNS = 50
#: At most this much of a Parquet file is fetched ahead (the first buffers of columns).
MAX_PREFETCH_BYTES = 64 * 1024 * 1024
#: pyarrow reads a column this much at a time (its buffered stream).
BUFFER_BYTES = 1024 * 1024
#: A first row group larger than this (uncompressed) is not decoded for a preview.
MAX_ROW_GROUP_BYTES = 1024 * 1024 * 1024
#: A column chunk larger than this (uncompressed) is not decoded (nor one over 16 MiB
#: that unpacks to 100 times its size).
MAX_COLUMN_BYTES = 256 * 1024 * 1024
#: Bytes read on demand that a ranged file keeps for reading again (Excel's first
#: rows are scanned before openpyxl reads them).
KEEP_BYTES = 16 * 1024 * 1024
#: Characters of one value shown at most.
MAX_CELL_CHARS = 1000
_CSV = (".csv", ".tsv")
_JSONL = (".jsonl", ".ndjson")
_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx", ".xlsm")
#: An Excel file's shared strings (all of them are read) larger than this, uncompressed,
#: are not previewed.
MAX_SHARED_STRINGS_BYTES = 64 * 1024 * 1024
#: Columns of an Excel sheet shown at most.
MAX_EXCEL_COLUMNS = 200
#: A sheet's first rows may hold this many cells, in this many bytes (uncompressed).
MAX_EXCEL_SCAN_CELLS = 100_000
MAX_EXCEL_SCAN_BYTES = 32 * 2**20
_TEXT = (
    ".txt", ".md", ".json", ".py", ".r", ".sql", ".xml", ".yaml", ".yml", ".toml", ".ini",
    ".log", ".sh", ".ipynb", ".html", ".js", ".css", ".tex", ".rmd", ".qmd", ".sas", ".do",
)  # fmt: skip

#: Reads bytes [first, last] of the object (inclusive).
ReadRange = Callable[[int, int], bytes]


def kind_of(path: str) -> str:
    name = path.lower()
    kinds = (
        ("csv", _CSV), ("jsonl", _JSONL), ("parquet", _PARQUET), ("excel", _EXCEL),
        ("text", _TEXT),
    )  # fmt: skip
    for kind, endings in kinds:
        if name.endswith(endings):
            return kind
    return "none"


def preview(info: ObjectInfo, read: ReadRange) -> DataPreview:
    """The preview of the object ``info`` describes, reading through ``read``."""
    kind = kind_of(info.key)
    if kind == "none" or info.size == 0:
        return DataPreview(kind=kind, size=info.size)
    if kind == "parquet":
        return _parquet(info, read)
    if kind == "excel":
        return _excel(info, read)
    head = read(0, min(info.size, HEAD_BYTES) - 1)
    cut = info.size > len(head)
    text = _decode(head, cut)
    if kind == "text":
        return DataPreview(kind=kind, size=info.size, text=text, truncated=cut)
    lines = text.splitlines()
    if cut and lines:
        lines = lines[:-1]  # the last line read may be cut short
    if kind == "csv":
        return _csv(info, lines, cut)
    return _jsonl(info, lines, cut)


def _decode(head: bytes, cut: bool) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if cut:  # a character cut in two at the end
        for back in range(1, 4):
            try:
                return head[: len(head) - back + 1].decode("utf-8")
            except UnicodeDecodeError:
                continue
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return head.decode("latin-1")  # Windows files of older systems


def _csv(info: ObjectInfo, lines: list[str], cut: bool) -> DataPreview:
    sample = "\n".join(lines[:50])
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = "\t" if info.key.lower().endswith(".tsv") else ","
    records = list(csv.reader(lines[: ROWS + 1], delimiter=delimiter))
    if not records:
        return DataPreview(kind="csv", size=info.size, truncated=cut)
    header, rows = records[0], records[1 : ROWS + 1]
    width = max([len(header), *(len(r) for r in rows)])
    names = [*header, *(f"column {i + 1}" for i in range(len(header), width))]
    columns = [
        PreviewColumn(name=name, type=_infer([r[i] if i < len(r) else "" for r in rows]))
        for i, name in enumerate(names)
    ]
    return DataPreview(
        kind="csv",
        size=info.size,
        columns=columns,
        rows=[[r[i] if i < len(r) else None for i in range(width)] for r in rows],
        truncated=cut or len(lines) > ROWS + 1,
        delimiter=delimiter,
    )


def _infer(values: list[str]) -> str:
    present = [v.strip() for v in values if v.strip()]
    if not present:
        return "string"
    for kind, parse in (("integer", int), ("double", _number)):
        try:
            for value in present:
                parse(value)
        except ValueError:
            continue
        return kind
    return "string"


def _number(value: str) -> float:
    return float(value.replace(",", ".", 1) if value.count(",") == 1 else value)


def _jsonl(info: ObjectInfo, lines: list[str], cut: bool) -> DataPreview:
    records: list[dict[str, Any]] = []
    for line in lines:
        if len(records) == ROWS:
            break
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # nested too deep for Python's parser
            value = {"(not JSON)": line[:200]}
        records.append(value if isinstance(value, dict) else {"value": value})
    names: dict[str, str] = {}
    for record in records:
        for key, value in record.items():
            names.setdefault(str(key), _json_type(value))
    rows = [[_cell(record.get(name)) for name in names] for record in records]
    return DataPreview(
        kind="jsonl",
        size=info.size,
        columns=[PreviewColumn(name=n, type=t) for n, t in names.items()],
        rows=rows,
        truncated=cut or len(records) < len([x for x in lines if x.strip()]),
    )


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "json"


def _cell(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _value(value: object) -> str | None:
    """A typed value (Parquet's, Excel's) as text, at most :data:`MAX_CELL_CHARS`:
    numbers, decimals, dates and times as themselves (a date-time at midnight as its
    date), lists and maps as JSON."""
    text = _text(value)
    if text is not None and len(text) > MAX_CELL_CHARS:
        return text[:MAX_CELL_CHARS] + "…"
    return text


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time() and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (int, float, decimal.Decimal, datetime.date, datetime.time)):
        return str(value)
    if isinstance(value, bytes):
        return value[:64].hex() + ("…" if len(value) > 64 else "")
    return json.dumps(value, ensure_ascii=False, default=str)


class _Ranged(io.RawIOBase):
    """A read-only, seekable file over ranged reads (what pyarrow needs). Ranges known
    to be needed can be fetched beforehand, at once (:meth:`prefetch`); a read inside
    one is answered from it."""

    def __init__(self, size: int, read: ReadRange) -> None:
        self.size, self._read, self._at = size, read, 0
        self._blocks: list[tuple[int, bytes]] = []
        self._kept = 0

    def prefetch(self, ranges: list[tuple[int, int]], workers: int = 8) -> None:
        """Fetch ``ranges`` (first, last byte) concurrently and keep them."""
        wanted = [(a, min(b, self.size - 1)) for a, b in ranges if 0 <= a < self.size]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            fetched = list(pool.map(lambda r: (r[0], self._read(*r)), wanted))
        self._blocks.extend(fetched)

    def _cached(self, at: int, want: int) -> bytes | None:
        for start, data in self._blocks:
            if start <= at and at + want <= start + len(data):
                return data[at - start : at - start + want]
        return None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self.size}[whence]
        self._at = max(0, base + offset)
        return self._at

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self._at)
        if want <= 0:
            return 0
        data = self._cached(self._at, want)
        if data is None:
            data = self._read(self._at, self._at + want - 1)
            if self._kept + len(data) <= KEEP_BYTES:  # read again by a second pass
                self._blocks.append((self._at, data))
                self._kept += len(data)
        buffer[: len(data)] = data
        self._at += len(data)
        return len(data)


def _parquet(info: ObjectInfo, read: ReadRange) -> DataPreview:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ranged = _Ranged(info.size, read)
    source = pa.PythonFile(ranged, mode="r")
    try:
        file = pq.ParquetFile(source, buffer_size=BUFFER_BYTES, pre_buffer=False)
    except (pa.ArrowException, OSError, ValueError):
        return DataPreview(kind="parquet", size=info.size, error="not a readable Parquet file")
    meta = file.metadata
    columns = [PreviewColumn(name=f.name, type=str(f.type)) for f in file.schema_arrow]
    common = {
        "kind": "parquet",
        "size": info.size,
        "columns": columns,
        "total_rows": meta.num_rows,
        "truncated": meta.num_rows > ROWS,
    }
    if meta.num_row_groups == 0:
        return DataPreview(**common)
    group = meta.row_group(0)
    if group.total_byte_size > MAX_ROW_GROUP_BYTES:
        return DataPreview(**common, error="its first row group is too large to preview")
    names = [f.name for f in file.schema_arrow][:MAX_COLUMNS]
    # Pages are decoded whole: a column whose chunk would unpack far beyond its size
    # (a few KB holding a string of hundreds of MB) is left out.
    shown = [
        name
        for j, name in enumerate(names)
        if j < group.num_columns and not _unpacks_too_far(group.column(j))
    ]
    if len(shown) < len(names):
        common["error"] = (
            "some columns unpack too far to preview: "
            + ", ".join(n for n in names if n not in shown)[:500]
        )
    ranged.prefetch(_first_pages(meta.row_group(0), len(shown)))
    try:
        batch = next(file.iter_batches(batch_size=ROWS, row_groups=[0], columns=shown), None)
    except (pa.ArrowException, OSError, ValueError):
        return DataPreview(**common, error="its first rows could not be read")
    if batch is None:
        return DataPreview(**common)
    values = {name: batch.column(name).to_pylist() for name in shown}
    rows = [
        [_value(values[name][i]) if name in values else None for name in names]
        for i in range(batch.num_rows)
    ]
    if len(columns) > len(names):
        common["truncated"] = True
    return DataPreview(**common, rows=rows)


def _unpacks_too_far(column: Any) -> bool:
    unpacked, packed = column.total_uncompressed_size, max(column.total_compressed_size, 1)
    return bool(unpacked > MAX_COLUMN_BYTES or (unpacked > 16 * 2**20 and unpacked > 100 * packed))


def _first_pages(group: Any, columns: int) -> list[tuple[int, int]]:
    """The first two of pyarrow's buffered reads of each of the first ``columns``
    columns of the row group (from its dictionary page, if any): a first page of the
    default size (1 MiB) with its header ends in the second. One each where two would
    pass :data:`MAX_PREFETCH_BYTES`."""
    blocks = 2 if columns * 2 * BUFFER_BYTES <= MAX_PREFETCH_BYTES else 1
    ranges = []
    for j in range(min(columns, group.num_columns)):
        column = group.column(j)
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset is not None:
            start = min(start, column.dictionary_page_offset)
        end = start + column.total_compressed_size
        for block in range(blocks):
            first = start + block * BUFFER_BYTES
            if first < end:
                ranges.append((first, min(end, first + BUFFER_BYTES) - 1))
    return ranges


def _excel(info: ObjectInfo, read: ReadRange) -> DataPreview:
    """The first sheet's first rows (the first row as the header) of an Excel workbook
    (.xlsx), read as a zip over ranged reads: its directory, the workbook, the shared
    strings and the sheet's beginning only."""
    import openpyxl

    # Small buffers: a zip is read in many short reads at scattered places.
    source = io.BufferedReader(_Ranged(info.size, read), buffer_size=64 * 1024)
    try:
        with zipfile.ZipFile(source) as archive:
            refusal = _excel_refusal(archive)
        if refusal:
            return DataPreview(kind="excel", size=info.size, error=refusal)
        book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:
        return DataPreview(kind="excel", size=info.size, error=f"not a readable workbook: {exc}")
    try:
        sheet = book.worksheets[0]
        # Bounds given: without them openpyxl reads the whole sheet for its dimensions.
        found = list(
            sheet.iter_rows(
                min_row=1, max_row=ROWS + 2, max_col=MAX_EXCEL_COLUMNS, values_only=True
            )
        )
        sheets = book.sheetnames
    finally:
        book.close()
    width = max(
        (i + 1 for r in found[: ROWS + 1] for i, v in enumerate(r) if v is not None), default=0
    )
    if not width:
        return DataPreview(kind="excel", size=info.size, sheets=sheets)
    found = [r for r in found if any(v is not None for v in r)]
    header, rows = found[0], found[1 : ROWS + 1]
    names = [
        _value(header[i]) if i < len(header) and header[i] is not None else f"column {i + 1}"
        for i in range(width)
    ]
    columns = [
        PreviewColumn(name=str(name), type=_excel_type([r[i] for r in rows if i < len(r)]))
        for i, name in enumerate(names)
    ]
    return DataPreview(
        kind="excel",
        size=info.size,
        columns=columns,
        rows=[[_value(r[i]) if i < len(r) else None for i in range(width)] for r in rows],
        truncated=len(found) > ROWS + 1 or len(sheets) > 1,
        sheets=sheets,
    )


def _excel_refusal(archive: zipfile.ZipFile) -> str:
    """Why the workbook is not opened for a preview ('' when it may be): what openpyxl
    reads whole (shared strings, styles, the workbook) must be small, and every sheet
    must say its size (<dimension>, which Excel writes first) and have its first rows in
    few cells and bytes — else openpyxl would parse far more than a preview shows."""
    limits = {
        "xl/sharedStrings.xml": MAX_SHARED_STRINGS_BYTES,
        "xl/styles.xml": 8 * 2**20,
        "xl/workbook.xml": 4 * 2**20,
        "[Content_Types].xml": 2**20,
    }
    members = {i.filename: i for i in archive.infolist()}
    for name, most in limits.items():
        if name in members and members[name].file_size > most:
            return f"{name} is too large to preview"
    sheets = [n for n in members if n.startswith("xl/worksheets/") and n.endswith(".xml")]
    if len(sheets) > 50:
        return "too many sheets to preview"
    for name in sheets:
        with archive.open(name) as stream:
            problem = _sheet_problem(stream)
        if problem:
            return f"{name}: {problem}"
    return ""


def _sheet_problem(stream: IO[bytes]) -> str:
    """'' if the sheet's first rows end within :data:`MAX_EXCEL_SCAN_CELLS` cells and
    :data:`MAX_EXCEL_SCAN_BYTES` bytes and, when it goes on, it says its size first
    (``<dimension>``: openpyxl reads a sheet without one whole to find it)."""
    seen = {"rows": 0, "cells": 0, "dimension": False}

    def start(name: str, _: object) -> None:
        local = name.rsplit("}", 1)[-1]
        if local == "dimension":
            seen["dimension"] = True
        elif local == "c":
            seen["cells"] += 1
            if seen["cells"] > MAX_EXCEL_SCAN_CELLS:
                raise _Enough("too many cells in its first rows")

    def end(name: str) -> None:
        if name.rsplit("}", 1)[-1] == "row":
            seen["rows"] += 1
            if seen["rows"] > ROWS + 1:
                raise _Enough("")

    def doctype(*_: object) -> None:
        raise _Enough("it declares a document type")

    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.StartDoctypeDeclHandler = doctype
    read = 0
    try:
        while chunk := stream.read(64 * 1024):
            read += len(chunk)
            parser.Parse(chunk, False)
            if read > MAX_EXCEL_SCAN_BYTES:
                return "its first rows are too large"
        parser.Parse(b"", True)
    except _Enough as enough:  # <dimension> comes before the rows, when there is one
        if str(enough) or seen["dimension"]:
            return str(enough)
        return "it does not say its size (no <dimension>)"
    except expat.ExpatError as exc:
        return f"not readable XML ({exc})"
    return ""  # the whole sheet is within the limits: openpyxl may read all of it


class _Enough(Exception):
    """The sheet's scan has seen what it needs (its message: why it refuses, or '')."""


def _excel_type(values: list[object]) -> str:
    present = {type(v).__name__ for v in values if v is not None}
    if not present:
        return "string"
    if present <= {"int"}:
        return "integer"
    if present <= {"int", "float"}:
        return "double"
    if present <= {"datetime", "date"}:
        return "date"
    if present == {"bool"}:
        return "boolean"
    return "string"
