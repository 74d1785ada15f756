"""Priority slots: bounded, most urgent first, nothing lost to cancellation."""

from __future__ import annotations

import asyncio

import pytest

from chattr.media.slots import PrioritySlots


async def test_waiters_are_served_lowest_priority_first_and_capacity_holds() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    holding = 0
    most = 0

    async def job(name: str, priority: tuple[int, float]) -> None:
        nonlocal holding, most
        async with slots.slot(priority):
            holding += 1
            most = max(most, holding)
            order.append(name)
            await asyncio.sleep(0.01)
            holding -= 1

    first = asyncio.create_task(job("turn A sentence 0", (0, 1.0)))
    await asyncio.sleep(0)  # A takes the free slot
    waiting = [
        asyncio.create_task(job("turn A sentence 1", (1, 1.0))),
        asyncio.create_task(job("turn A sentence 2", (2, 1.0))),
        asyncio.create_task(job("turn B sentence 0", (0, 2.0))),
        asyncio.create_task(job("turn C sentence 0", (0, 3.0))),
    ]
    await asyncio.gather(first, *waiting)
    assert order == [
        "turn A sentence 0",
        "turn B sentence 0",
        "turn C sentence 0",
        "turn A sentence 1",
        "turn A sentence 2",
    ]
    assert most == 1


async def test_a_cancelled_waiter_does_not_leak_or_block_the_slot() -> None:
    slots = PrioritySlots(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.slot(0):
            await release.wait()

    async def waiter(priority: int) -> str:
        async with slots.slot(priority):
            return "served"

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(waiter(0))
    survivor = asyncio.create_task(waiter(1))
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await held
    assert await asyncio.wait_for(survivor, 1) == "served"
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert slots.waiting == 0
    async with slots.slot(0):  # the slot came back
        pass


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PrioritySlots(0)
