"""Bounded concurrency that serves the most urgent waiter first.

With a plain semaphore, a burst of conversations queues first-come-first-served: the later
sentences of early turns run before the first sentences of later turns, and a person waits a
minute for the first word. Here the waiter with the lowest priority key goes next — the fan-out
uses (sentence index, turn start), so every turn's first sentence is served before anyone's
second.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class PrioritySlots:
    """At most `capacity` holders at once; waiters are admitted lowest priority key first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._free = capacity
        self._waiters: list[tuple[Any, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties keep arrival order

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, future in self._waiters if not future.done())

    @asynccontextmanager
    async def slot(self, priority: Any) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block."""
        if self._free > 0 and not self.waiting:
            self._free -= 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._order), future))
            try:
                await future
            except asyncio.CancelledError:
                # Cancelled after being handed the slot: pass it on rather than lose it.
                if future.done() and not future.cancelled():
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1
