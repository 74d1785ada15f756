"""Short-term memory on a real Redis server and in-process: same behaviour, isolated sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chattr.memory import (
    InProcessMemory,
    MemoryUnavailable,
    RedisMemory,
    ShortTermMemory,
    Turn,
    open_memory,
)

from ..conftest import REDIS_URL


@pytest.fixture(params=["redis", "in-process"])
def memory(request: pytest.FixtureRequest) -> Iterator[ShortTermMemory]:
    if request.param == "redis":
        # Asked for here only, so the in-process half runs without a Redis server.
        prefix: str = request.getfixturevalue("redis_prefix")
        store = RedisMemory(REDIS_URL, max_turns=3, ttl_s=60, prefix=prefix)
        yield store
        store.close()
    else:
        yield InProcessMemory(max_turns=3)


def test_keeps_the_last_n_turns_in_order(memory: ShortTermMemory) -> None:
    for i in range(5):
        memory.append("s1", "napoleon", Turn(f"q{i}", f"a{i}"))
    assert [t.user for t in memory.recent("s1", "napoleon")] == ["q2", "q3", "q4"]


def test_sessions_and_characters_are_isolated(memory: ShortTermMemory) -> None:
    memory.append("alice", "napoleon", Turn("I am Alice", "Bonjour Alice"))
    memory.append("bob", "napoleon", Turn("I am Bob", "Bonjour Bob"))
    memory.append("alice", "einstein", Turn("Hi Albert", "Hello"))
    assert [t.user for t in memory.recent("alice", "napoleon")] == ["I am Alice"]
    assert [t.user for t in memory.recent("bob", "napoleon")] == ["I am Bob"]
    assert [t.user for t in memory.recent("alice", "einstein")] == ["Hi Albert"]
    assert memory.recent("carol", "napoleon") == []


def test_pop_last_and_clear(memory: ShortTermMemory) -> None:
    memory.append("s", "c", Turn("one", "1"))
    memory.append("s", "c", Turn("two", "2"))
    popped = memory.pop_last("s", "c")
    assert popped is not None and popped.user == "two" and popped.assistant == "2"
    assert [t.user for t in memory.recent("s", "c")] == ["one"]
    memory.clear("s", "c")
    assert memory.recent("s", "c") == []
    assert memory.pop_last("s", "c") is None


def test_redis_keys_expire(redis_prefix: str) -> None:
    import redis

    store = RedisMemory(REDIS_URL, max_turns=3, ttl_s=30, prefix=redis_prefix)
    store.append("s", "c", Turn("q", "a"))
    ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{redis_prefix}:memory:s:c")
    assert 0 < int(ttl) <= 30


def test_unreachable_redis_raises_a_clear_error() -> None:
    store = RedisMemory("redis://127.0.0.1:1/0", max_turns=3, ttl_s=30)
    with pytest.raises(MemoryUnavailable, match="Redis unreachable"):
        store.recent("s", "c")
    with pytest.raises(MemoryUnavailable):
        store.append("s", "c", Turn("q", "a"))


def test_no_url_gives_the_in_process_store_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        store = open_memory(None, max_turns=2, ttl_s=10)
    assert isinstance(store, InProcessMemory)
    assert "in-process" in caplog.text
