"""Concurrent submissions share one flush; a bad item fails alone; an outage fails them all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from interlock.batching import Batcher


class Store:
    """Records each flush; items named 'bad' make a whole flush fail like a constraint error."""

    def __init__(self) -> None:
        self.flushes: list[list[str]] = []

    async def flush(self, items: Sequence[str]) -> list[str]:
        self.flushes.append(list(items))
        await asyncio.sleep(0)
        if "bad" in items:
            raise ValueError("violates a constraint")
        if "down" in items:
            raise ConnectionRefusedError("database is down")
        return [item.upper() for item in items]


async def test_concurrent_submissions_share_one_flush_and_get_their_own_result() -> None:
    store = Store()
    batcher = Batcher(store.flush)
    results = await asyncio.gather(*(batcher.submit(x) for x in ["a", "b", "c"]))
    assert results == ["A", "B", "C"]
    assert store.flushes == [["a", "b", "c"]]


async def test_items_arriving_during_a_flush_go_in_the_next_one() -> None:
    store = Store()
    sizes: list[float] = []
    batcher = Batcher(store.flush, max_size=2, observe=sizes.append)
    results = await asyncio.gather(*(batcher.submit(x) for x in ["a", "b", "c", "d", "e"]))
    assert results == ["A", "B", "C", "D", "E"]
    assert store.flushes == [["a", "b"], ["c", "d"], ["e"]]
    assert sizes == [2, 2, 1]


async def test_a_bad_item_fails_alone_and_its_neighbours_still_commit() -> None:
    store = Store()
    batcher = Batcher(store.flush)
    results = await asyncio.gather(
        *(batcher.submit(x) for x in ["a", "bad", "c"]), return_exceptions=True
    )
    assert results[0] == "A"
    assert results[2] == "C"
    assert isinstance(results[1], ValueError)
    # one failed flush of all three, then one flush per item to find the bad one
    assert store.flushes == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_an_outage_fails_every_item_without_splitting() -> None:
    store = Store()
    batcher = Batcher(store.flush)
    results = await asyncio.gather(
        *(batcher.submit(x) for x in ["a", "down"]), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionRefusedError) for r in results)
    assert store.flushes == [["a", "down"]]


async def test_the_batcher_works_again_after_a_failure() -> None:
    store = Store()
    batcher = Batcher(store.flush)
    with pytest.raises(ValueError, match="constraint"):
        await batcher.submit("bad")
    assert await batcher.submit("ok") == "OK"
