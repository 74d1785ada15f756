"""Priority slots: bounded, most urgent first, a reserve for the urgent, nothing lost to
cancellation."""

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


async def test_a_reserved_slot_is_kept_for_urgent_holders() -> None:
    """A scene's next speaker: its first sentence (urgent) takes the reserved slot at once while
    the previous reply's later sentences hold the rest and more of them wait."""
    slots = PrioritySlots(2, reserved=1)
    release = asyncio.Event()
    holding: list[str] = []

    async def job(name: str, priority: tuple[int, float], urgent: bool = False) -> None:
        async with slots.slot(priority, urgent=urgent):
            holding.append(name)
            await release.wait()

    first = asyncio.create_task(job("reply 1 sentence 0", (0, 1.0), urgent=True))
    later = [asyncio.create_task(job(f"reply 1 sentence {i}", (i, 1.0))) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    # The urgent one and one other hold the two slots: the others have one slot between them.
    assert holding == ["reply 1 sentence 0", "reply 1 sentence 1"]
    release.set()
    await asyncio.gather(first, *later)
    release.clear()
    holding.clear()
    others = [asyncio.create_task(job(f"reply 1 sentence {i}", (i, 1.0))) for i in (4, 5)]
    await asyncio.sleep(0)
    assert holding == ["reply 1 sentence 4"]  # never both slots
    urgent = asyncio.create_task(job("reply 2 sentence 0", (0, 2.0), urgent=True))
    await asyncio.sleep(0)
    assert holding == ["reply 1 sentence 4", "reply 2 sentence 0"]  # no wait for sentence 4
    release.set()
    await asyncio.gather(urgent, *others)
    assert holding[-1] == "reply 1 sentence 5" and slots.waiting == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PrioritySlots(0)


def test_the_reserve_leaves_room_for_the_others() -> None:
    with pytest.raises(ValueError, match="below capacity"):
        PrioritySlots(2, reserved=2)
