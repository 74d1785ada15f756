"""Fair use against the real app: per-client rate limits (Redis, or in-process without it) and a
per-client cap on running turns, so one client's flood does not hold the turn slots."""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from gradio_client import Client

from chattr.access.rate_limits import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import REDIS_URL, StartApp
from .support import Page

LOOPBACK = "127.0.0.1"  # the tests' clients reach chattr through loopback: the "proxy"


def client(url: str, address: str | None = None) -> Any:
    headers = {"X-Forwarded-For": address} if address else None
    return Client(url, headers=headers, verbose=False)


def turn(c: Any, session: str = "", message: str = "Hello.") -> dict[str, Any]:
    return c.predict(message, "curie", session, False, api_name="/chat")  # type: ignore[no-any-return]


class ManualClock:
    """A clock the test moves by hand: the window slides without waiting it out."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WINDOW_S = 60.0  # long, so Redis's real expiry (as long) never fires while a test runs


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["in-process", "redis"])
def limiter(
    request: pytest.FixtureRequest, redis_prefix: str, clock: ManualClock
) -> Iterator[RateLimiter]:
    if request.param == "redis":
        made = RedisRateLimiter(
            REDIS_URL, 3, WINDOW_S, prefix=redis_prefix, name="test", clock=clock
        )
        yield made
        made.close()
    else:
        yield InProcessRateLimiter(3, WINDOW_S, clock=clock)


def test_sliding_window_counts_every_key_and_refused_hits_cost_nothing(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    for _ in range(3):
        assert limiter.hit(["addr:a", "session:1"]) is None
    clock.now += 10
    wait = limiter.hit(["addr:a", "session:2"])  # the address is full
    assert wait == pytest.approx(WINDOW_S - 10)  # until the oldest hit leaves the window
    assert limiter.hit(["addr:b", "session:1"]) is not None  # so is the session
    for _ in range(3):  # the refusals above counted nothing against b or session 2
        assert limiter.hit(["addr:b", "session:2"]) is None
    clock.now += WINDOW_S - 10.5
    assert limiter.hit(["addr:a", "session:1"]) is not None  # not yet
    clock.now += 0.5
    assert limiter.hit(["addr:a", "session:1"]) is None  # the window slid on


def test_weighted_hits_count_their_weight_and_none_outweighs_the_window(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    # An upload budget: the limit (3) is what the window holds, each hit weighs its size.
    assert limiter.hit(["addr:w"], weight=2) is None
    assert limiter.hit(["addr:w"], weight=2) is not None  # 2 + 2 > 3: refused, counted nothing
    assert limiter.hit(["addr:w"], weight=1) is None  # exactly full
    assert limiter.hit(["addr:w"]) is not None
    # A hit heavier than the whole window is counted as the whole window, not refused for ever.
    assert limiter.hit(["addr:big"], weight=50) is None
    assert limiter.hit(["addr:big"]) is not None
    clock.now += WINDOW_S
    assert limiter.hit(["addr:w"], weight=3) is None


def test_redis_keys_expire_with_the_window(redis_prefix: str) -> None:
    limiter = RedisRateLimiter(REDIS_URL, 2, 5.0, prefix=redis_prefix, name="turns")
    limiter.hit(["addr:x"])
    r = redis.Redis.from_url(REDIS_URL)
    ttl = r.pttl(f"{redis_prefix}:rate:turns:addr:x")
    r.close()
    limiter.close()
    assert 0 < ttl <= 5000


def test_redis_down_lets_turns_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 1, 60.0, prefix="x", name="turns")
    assert limiter.hit(["addr:a"]) is None and limiter.hit(["addr:a"]) is None


def test_turns_over_the_limit_are_refused_with_when_to_retry(
    start_app: StartApp, llm: FakeLLMServer
) -> None:
    app = start_app(turns_per_minute=3, trusted_proxies=LOOPBACK)
    busy = client(app.url, "198.51.100.1")
    for _ in range(3):
        assert turn(busy)["text"]
    asked = len(llm.requests)
    with pytest.raises(Exception, match=r"at most 3 a minute .*try again in \d+ s") as refused:
        turn(busy)
    # Refused, not queued (a queued turn would have waited out the minute and then run).
    assert len(llm.requests) == asked
    seconds = int(str(refused.value).split("try again in ")[1].split(" ")[0])
    assert 50 <= seconds <= 60
    # A fresh session id from the same address does not get around it.
    with pytest.raises(Exception, match="try again in"):
        turn(busy, session=uuid.uuid4().hex)
    # Another client is not affected.
    assert turn(client(app.url, "198.51.100.2"))["text"]


def test_without_trusted_proxies_a_forged_forwarded_for_does_not_help(
    start_app: StartApp,
) -> None:
    app = start_app(turns_per_minute=2, trusted_proxies="10.9.8.7")  # not this machine
    for forged in ("198.51.100.10", "198.51.100.11"):
        assert turn(client(app.url, forged))["text"]
    with pytest.raises(Exception, match="try again in"):
        turn(client(app.url, "198.51.100.12"))  # all three are 127.0.0.1 to chattr


def test_limits_are_shared_through_redis_and_kept_in_process_without_it(
    start_app: StartApp, redis_prefix: str, tmp_path: Path
) -> None:
    first = start_app(turns_per_minute=2, trusted_proxies=LOOPBACK)
    # A second replica: its own embedded Qdrant folder (one process holds a shard's lock).
    second = start_app(turns_per_minute=2, trusted_proxies=LOOPBACK, data_dir=tmp_path / "b")
    assert turn(client(first.url, "198.51.100.20"))["text"]
    assert turn(client(second.url, "198.51.100.20"))["text"]
    with pytest.raises(Exception, match="try again in"):
        turn(client(first.url, "198.51.100.20"))  # the replicas share one count
    r = redis.Redis.from_url(REDIS_URL)
    assert r.exists(f"{redis_prefix}:rate:turns:addr:198.51.100.20")
    r.close()

    alone = start_app(
        turns_per_minute=2, trusted_proxies=LOOPBACK, redis_url=None, data_dir=tmp_path / "c"
    )
    for _ in range(2):
        assert turn(client(alone.url, "198.51.100.21"))["text"]
    with pytest.raises(Exception, match="try again in"):
        turn(client(alone.url, "198.51.100.21"))


@pytest.fixture
def own_characters(characters_dir: Path, tmp_path: Path) -> Path:
    """A characters folder of this test's own: imports must not leak into other tests."""
    target = tmp_path / "characters"
    shutil.copytree(characters_dir, target)
    return target


def test_imports_over_the_limit_are_refused(
    start_app: StartApp, own_characters: Path, tmp_path: Path
) -> None:
    app = start_app(imports_per_hour=2, characters_dir=own_characters, trusted_proxies=LOOPBACK)
    page = Page(app.url, {"X-Forwarded-For": "198.51.100.30"})
    outcomes = []
    for index in range(3):
        card = tmp_path / f"card{index}.json"
        card.write_text(json.dumps({"name": f"Visitor {index}", "description": "A test card."}))
        outcomes.append(page.event("chattr-import", "upload", [page.upload(card), "s1"]))
    page.close()
    assert [o["success"] for o in outcomes] == [True, True, False]
    assert "at most 2 an hour" in outcomes[2]["output"]["error"]
    assert "try again in" in outcomes[2]["output"]["error"]
    assert not (own_characters / "visitor-2").exists()
    other = Page(app.url, {"X-Forwarded-For": "198.51.100.31"})
    card = tmp_path / "card-other.json"
    card.write_text(json.dumps({"name": "Other Visitor", "description": "Another."}))
    assert other.event("chattr-import", "upload", [other.upload(card), "s2"])["success"]
    other.close()


def call_chat(
    url: str, address: str, message: str, queued: threading.Semaphore | None = None
) -> tuple[str, str]:
    """One `chat` call over raw HTTP (Gradio's /call API): ("complete" | "error", its data).
    `queued` is released once Gradio has the call in its queue."""
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": address}, timeout=180) as http:
        posted = http.post(
            "/gradio_api/call/chat", json={"data": [message, "curie", "", False, None, None]}
        )
        event_id = posted.json()["event_id"]
        if queued is not None:
            queued.release()
        kind = ""
        with http.stream("GET", f"/gradio_api/call/chat/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    return kind, line[5:]
    raise AssertionError("no result")


def timed(url: str, address: str) -> float:
    started = time.monotonic()
    kind, data = call_chat(url, address, "Am I served?")
    assert kind == "complete", data
    return time.monotonic() - started


def flood_then_time_one(url: str, flood: int) -> tuple[float, list[tuple[str, str]]]:
    """Client A sends `flood` turns at once, then client B one: B's seconds, A's outcomes."""
    queued = threading.Semaphore(0)
    with ThreadPoolExecutor(flood) as pool:
        jobs = [
            pool.submit(call_chat, url, "198.51.100.40", f"Flood {i}.", queued)
            for i in range(flood)
        ]
        for _ in range(flood):  # A's turns are all in Gradio's queue before B's
            assert queued.acquire(timeout=60)
        waited = timed(url, "198.51.100.41")
        return waited, [job.result() for job in jobs]


def test_one_client_flooding_does_not_hold_the_turn_slots(
    start_app: StartApp, llm: FakeLLMServer, tmp_path: Path
) -> None:
    llm.state.first_token_s = 1.5  # each turn holds its slot about 1.5 s
    try:
        common = {"concurrency_limit": 4, "turns_per_minute": 0, "trusted_proxies": LOOPBACK}
        fair = start_app(turns_per_client=2, **common)
        timed(fair.url, "198.51.100.50")  # warm up (the LLM client is built on first use)
        alone = statistics.median(timed(fair.url, "198.51.100.50") for _ in range(3))
        waits = []
        for _ in range(3):
            waited, outcomes = flood_then_time_one(fair.url, 30)
            waits.append(waited)
            refused = [data for kind, data in outcomes if kind != "complete"]
            assert all("replies in progress" in data for data in refused)
            assert len(refused) >= 26  # two ran, two waited; the rest were refused at once
        # Its own embedded Qdrant folder: the first app still holds the shared one's lock.
        unfair = start_app(turns_per_client=0, data_dir=tmp_path / "unfair", **common)
        timed(unfair.url, "198.51.100.50")
        baseline, outcomes = flood_then_time_one(unfair.url, 30)
        assert all(kind == "complete" for kind, _ in outcomes)
    finally:
        llm.state.first_token_s = 0.0
    fair_wait = statistics.median(waits)
    print(
        f"\nB alone {alone:.2f} s; behind a 30-turn flood: {fair_wait:.2f} s (runs {waits}), "
        f"{baseline:.2f} s without CHATTR_TURNS_PER_CLIENT"
    )
    # With the cap B starts about as soon as a slot frees; without it, behind all of A's turns.
    assert fair_wait < 2 * alone + 3.0
    assert baseline > fair_wait + 3.0
