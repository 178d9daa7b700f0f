"""Part buffers kept from one resumable-upload part to the next, and let go when idle."""

from __future__ import annotations

import asyncio

from balsam.web.buffers import PartBuffers


def test_a_buffer_given_back_serves_the_next_part_of_its_length() -> None:
    async def run() -> None:
        buffers = PartBuffers(keep=2, idle_seconds=60)
        first = await buffers.take(1024)
        assert len(first) == 1024
        buffers.give(first)
        assert await buffers.take(1024) is first
        assert await buffers.take(1024) is not first  # taken: a new one
        buffers.give(first)
        other = await buffers.take(10)  # another length: a new one, the kept one stays
        assert len(other) == 10 and buffers.kept == 1

    asyncio.run(run())


def test_at_most_keep_are_kept_and_none_once_uploads_stop() -> None:
    async def run() -> None:
        buffers = PartBuffers(keep=2, idle_seconds=0.2)
        taken = [await buffers.take(64) for _ in range(4)]
        for buffer in taken:
            buffers.give(buffer)
        assert buffers.kept == 2
        assert await buffers.take(64) is taken[3]  # the newest kept
        buffers.give(taken[3])
        await asyncio.sleep(0.1)
        buffers.give(await buffers.take(64))  # still in use: the release waits
        await asyncio.sleep(0.15)
        assert buffers.kept == 2
        await asyncio.sleep(0.2)
        assert buffers.kept == 0

    asyncio.run(run())
