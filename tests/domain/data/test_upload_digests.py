"""The in-process SHA-256 of resumable uploads: parts hashed in order as they arrive
from concurrent requests, the hashing itself outside the lock."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from typing import Any

from balsam.domain.data.uploads import _Digests


def test_parts_stored_by_threads_in_any_order_hash_as_the_whole() -> None:
    digests, parts = _Digests(), [os.urandom(random.randint(1, 50_000)) for _ in range(40)]
    for number in range(1, len(parts) + 1):
        digests.receiving("u", number)
    order = list(range(1, len(parts) + 1))
    random.shuffle(order)
    threads = [threading.Thread(target=digests.stored, args=("u", n, parts[n - 1])) for n in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    digest = digests.take("u")
    assert digest is not None
    assert digest.hash.hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()
    assert digest.offset == sum(map(len, parts)) and digest.next == len(parts) + 1


class _HeldHash:
    """A hash whose update waits until released, to catch a part in the middle."""

    def __init__(self) -> None:
        self.inner = hashlib.sha256()
        self.entered, self.go = threading.Event(), threading.Event()

    def update(self, data: Any) -> None:
        self.entered.set()
        assert self.go.wait(10)
        self.inner.update(data)


def test_a_part_sent_again_while_its_first_copy_is_hashed_spoils_the_hash() -> None:
    digests = _Digests()
    digests.receiving("u", 1)
    held = _HeldHash()
    digests._digests["u"].hash = held  # type: ignore[assignment]
    first = threading.Thread(target=digests.stored, args=("u", 1, b"first copy"))
    first.start()
    assert held.entered.wait(10)

    digests.receiving("u", 1)  # the client sends part 1 again, other bytes
    again = threading.Thread(target=digests.stored, args=("u", 1, b"other bytes"))
    again.start()
    again.join(0.3)
    assert again.is_alive()  # it waits for the first copy's hashing
    held.go.set()
    first.join(10)
    again.join(10)

    # Which bytes the storage server kept is not known here: completion reads back.
    assert digests.take("u") is None
