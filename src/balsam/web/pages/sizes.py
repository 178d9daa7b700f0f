"""Sizes of data as people read them: ``1.5 MB`` (``1,5 MB`` in Swedish)."""

from __future__ import annotations

from babel.numbers import format_decimal

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(language: str, size: int) -> str:
    """``size`` bytes in the largest decimal unit under which it is at least 1, with
    at most one decimal (B: none)."""
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    if unit == 0:
        return f"{size} {_UNITS[0]}"
    return f"{format_decimal(value, format='#,##0.#', locale=language)} {_UNITS[unit]}"
