"""Bounded concurrency that serves the most urgent waiter first.

With a plain semaphore, a burst of conversations queues first-come-first-served: the later
sentences of early turns run before the first sentences of later turns, and a person waits a
minute for the first word. Here the waiter with the lowest priority key goes next — the fan-out
uses (sentence index, turn start), so every turn's first sentence is served before anyone's
second.

Priority only orders those still waiting: a first sentence that arrives while every slot is held
by later sentences waits for one of them to finish (a scene's next speaker behind the previous
speaker's remaining sentences). So some slots may be `reserved` for urgent holders (the fan-out's
first sentences): the others never take the last ones.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

_Waiter = tuple[Any, int, asyncio.Future[None]]


class PrioritySlots:
    """At most `capacity` holders at once; waiters are admitted lowest priority key first, urgent
    ones before the rest; the rest never hold more than `capacity - reserved` slots together."""

    def __init__(self, capacity: int, *, reserved: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not 0 <= reserved < capacity:
            raise ValueError("reserved must be at least 0 and below capacity")
        self._free = capacity
        self._others_free = capacity - reserved  # slots the non-urgent may still take
        self._urgent: list[_Waiter] = []
        self._others: list[_Waiter] = []
        self._order = itertools.count()  # ties keep arrival order

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, future in self._urgent + self._others if not future.done())

    @asynccontextmanager
    async def slot(self, priority: Any, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block; `urgent` may take a reserved one."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._others
        heapq.heappush(queue, (priority, next(self._order), future))
        self._admit()
        try:
            await future  # at once when admitted at once
        except asyncio.CancelledError:
            # Cancelled after being handed the slot: pass it on rather than lose it.
            if future.done() and not future.cancelled():
                self._release(urgent)
            raise
        try:
            yield
        finally:
            self._release(urgent)

    def _admit(self) -> None:
        """Hand free slots to waiters: urgent ones first, the others within their share."""
        while self._urgent and self._free > 0:
            _, _, future = heapq.heappop(self._urgent)
            if not future.done():  # a cancelled waiter is dropped here
                self._free -= 1
                future.set_result(None)
        while self._others and self._free > 0 and self._others_free > 0:
            _, _, future = heapq.heappop(self._others)
            if not future.done():
                self._free -= 1
                self._others_free -= 1
                future.set_result(None)

    def _release(self, urgent: bool) -> None:
        self._free += 1
        if not urgent:
            self._others_free += 1
        self._admit()
