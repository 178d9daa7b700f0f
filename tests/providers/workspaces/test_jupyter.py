"""What Balsam reads back from a workspace's server (its user's code) is bounded and
cannot break the supervisor."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from balsam.providers.workspaces import jupyter


def test_a_naive_activity_time_is_utc_and_comparable() -> None:
    parsed = jupyter._parse("2026-12-01T00:00:00")
    assert parsed == datetime(2026, 12, 1, tzinfo=UTC)
    assert max(parsed, datetime.now(UTC)) is not None  # comparable with aware times


def test_an_activity_time_in_the_future_is_now() -> None:
    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    parsed = jupyter._parse(later)
    assert parsed is not None and parsed <= datetime.now(UTC)


class _Answer:
    def __init__(self, chunks: list[bytes], delay: float = 0) -> None:
        self._chunks, self._delay = chunks, delay

    def read(self, amount: int) -> bytes:
        time.sleep(self._delay)
        return self._chunks.pop(0) if self._chunks else b""


def test_an_answer_too_large_is_refused() -> None:
    chunks = [b"x" * 65536] * (jupyter.MAX_ANSWER_BYTES // 65536 + 2)
    with pytest.raises(ValueError, match="too large"):
        jupyter._read_bounded(_Answer(chunks), time.monotonic() + 60)  # type: ignore[arg-type]


def test_an_answer_trickling_past_the_deadline_is_refused() -> None:
    answer: Any = _Answer([b"["] * 100, delay=0.05)
    with pytest.raises(OSError, match="too slow"):
        jupyter._read_bounded(answer, time.monotonic() + 0.3)


def test_a_small_answer_is_read_whole() -> None:
    answer: Any = _Answer([b'[{"a": ', b"1}]"])
    assert jupyter._read_bounded(answer, time.monotonic() + 5) == b'[{"a": 1}]'
