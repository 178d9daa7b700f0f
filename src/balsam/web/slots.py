"""Counted slots for requests that hold something big while they run (a git process,
an upload's buffered parts): so many in all and per user, so that one client opening
hundreds cannot hold gigabytes and starve everyone else. One event loop per app:
plain counters suffice."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request


class Slots:
    def __init__(self, total: int, per_user: int) -> None:
        self.total, self.per_user = total, per_user
        self.running: Counter[str] = Counter()

    def take(self, user: str) -> bool:
        """A slot for ``user``, if one is free (then :meth:`give` it back)."""
        if self.running.total() >= self.total or self.running[user] >= self.per_user:
            return False
        self.running[user] += 1
        return True

    def give(self, user: str) -> None:
        self.running[user] -= 1
        if self.running[user] <= 0:
            del self.running[user]


def app_slots(request: Request, name: str, total: int, per_user: int) -> Slots:
    """The app's slots called ``name`` (made with these limits on first use)."""
    slots = getattr(request.app.state, name, None)
    if slots is None:
        slots = Slots(total, per_user)
        setattr(request.app.state, name, slots)
    assert isinstance(slots, Slots)
    return slots
