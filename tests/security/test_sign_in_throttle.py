"""Password guessing against the real app (CHATTR_AUTH, Redis): 429 with Retry-After before the
password is checked, per address and per user name; the person's own device and other addresses
get through; the waits grow; the Hugging Face token check is throttled the same way; a flood of
sign-ins leaves signed-in people's turns alone."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chattr.access.hf_signin import HfSignIn, session_user
from chattr.access.rate_limits import LimitReached
from chattr.access.sign_in_throttle import (
    DEVICE_COOKIE,
    LOCK_MEMORY_S,
    MAX_LOCK_S,
    InProcessThrottleStore,
    PasswordCheck,
    RedisThrottleStore,
    SignInThrottle,
    ThrottleStore,
)
from chattr.access.sign_out import RedisSignOuts, SignOutGuard
from chattr.testing.threaded_server import ThreadedServer

from ..conftest import REDIS_URL, StartApp
from .test_hf_signin import Hub

PAIRS = "ada:lovelace-1843,alan:turing 1936"


def login(url: str, user: str, password: str, address: str, **cookies: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30, cookies=cookies) as http:
        return http.post(
            "/login",
            data={"username": user, "password": password},
            headers={"X-Forwarded-For": address},
        )


def test_guesses_from_one_address_wait_before_the_password_is_checked(
    start_app: StartApp,
) -> None:
    app = start_app(auth=PAIRS, signin_failures=3, signin_lock_s=60)
    attacker, ada = "203.0.113.7", "198.51.100.20"
    answers = [login(app.url, "ada", f"guess-{i}", attacker).status_code for i in range(3)]
    assert answers == [400, 400, 400]
    locked = login(app.url, "ada", "guess-3", attacker)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    assert "try again in" in locked.json()["detail"]
    # Refused before the password is looked at: the right one does not get through either.
    right = login(app.url, "ada", "lovelace-1843", attacker)
    assert right.status_code == 429 and "access-token" not in right.headers.get("set-cookie", "")
    # Ada, elsewhere, is not locked out by the attacker's failures.
    mine = login(app.url, "ada", "lovelace-1843", ada)
    assert mine.status_code == 200 and mine.json()["success"]
    assert DEVICE_COOKIE in mine.headers.get("set-cookie", "")


def test_a_guessing_attack_over_many_addresses_locks_the_name_but_not_her_device(
    start_app: StartApp,
) -> None:
    app = start_app(auth=PAIRS, signin_failures=3, signin_user_failures=6)
    # Ada signs in once from her laptop: it keeps a device token.
    laptop = login(app.url, "ada", "lovelace-1843", "198.51.100.20")
    device = laptop.cookies[DEVICE_COOKIE]
    for index in range(6):  # two failures each from three addresses: no address locked
        address = f"203.0.113.{10 + index // 2}"
        assert login(app.url, "ada", f"guess-{index}", address).status_code == 400
    fresh = login(app.url, "ada", "lovelace-1843", "192.0.2.44")
    assert fresh.status_code == 429  # the name waits for devices it never signed in from
    again = login(app.url, "ada", "lovelace-1843", "192.0.2.45", **{DEVICE_COOKIE: device})
    assert again.status_code == 200  # her own device gets through
    # Another person's token is not hers: it does not open her name.
    alan = login(app.url, "alan", "turing 1936", "192.0.2.46").cookies[DEVICE_COOKIE]
    assert (
        login(app.url, "ada", "lovelace-1843", "192.0.2.47", **{DEVICE_COOKIE: alan}).status_code
        == 429
    )
    assert login(app.url, "alan", "turing 1936", "192.0.2.48").status_code == 200


def test_the_page_form_is_counted_too(start_app: StartApp) -> None:
    # The page posts multipart form data, scripts urlencoded: both are read for the name.
    app = start_app(auth=PAIRS, signin_failures=1, signin_user_failures=2)
    with httpx.Client(base_url=app.url, timeout=30) as http:
        for address in ("203.0.113.30", "203.0.113.31"):
            wrong = http.post(
                "/login",
                files={"username": (None, "alan"), "password": (None, "enigma")},
                headers={"X-Forwarded-For": address},
            )
            assert wrong.status_code == 400
    assert login(app.url, "alan", "turing 1936", "203.0.113.32").status_code == 429
    assert login(app.url, "ada", "lovelace-1843", "203.0.113.33").status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(
    request: pytest.FixtureRequest, redis_prefix: str
) -> Iterator[tuple[ThrottleStore, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield InProcessThrottleStore(clock), clock
    else:
        redis_store = RedisThrottleStore(REDIS_URL, prefix=redis_prefix, clock=clock)
        yield redis_store, clock
        redis_store.close()


def test_each_failure_after_a_wait_doubles_the_next_wait_up_to_an_hour(
    store: tuple[ThrottleStore, Clock],
) -> None:
    backend, clock = store
    throttle = SignInThrottle(backend, failures=3, user_failures=100, window_s=900, lock_s=30)
    address = "203.0.113.9"
    assert [throttle.failed(address, "ada") for _ in range(3)] == [0.0, 0.0, 30.0]
    assert throttle.wait(address, "ada") == 30.0
    waits = []
    for _ in range(9):
        clock.now += throttle.wait(address, "ada")  # wait it out, then fail once more
        assert throttle.wait(address, "ada") == 0.0
        waits.append(throttle.failed(address, "ada"))
    assert waits == [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, MAX_LOCK_S, MAX_LOCK_S, MAX_LOCK_S]
    # A day after its last wait, the address starts over.
    clock.now += MAX_LOCK_S + LOCK_MEMORY_S + 1
    assert [throttle.failed(address, "ada") for _ in range(3)] == [0.0, 0.0, 30.0]
    # Failures older than the window are forgotten.
    other = "203.0.113.10"
    throttle.failed(other)
    throttle.failed(other)
    clock.now += 901
    assert throttle.failed(other) == 0.0


def test_passwords_are_compared_whole_and_every_pair_is_tried() -> None:
    check = PasswordCheck([("ada", "lovelace-1843"), ("alan", "turing 1936")])
    assert check("ada", "lovelace-1843") and check("alan", "turing 1936")
    for user, password in [
        ("ada", "turing 1936"),  # another person's password
        ("ada", "lovelace-184"),  # a prefix
        ("ada", "lovelace-18433"),
        ("eve", "lovelace-1843"),
        ("", ""),
        ("ada\udc80", "x"),  # a lone surrogate from a form must not crash the check
    ]:
        assert not check(user, password), (user, password)


def test_tokens_nobody_owns_are_throttled_before_the_hub_is_asked(redis_prefix: str) -> None:
    hub = Hub()
    clock = Clock()
    throttle = SignInThrottle(
        RedisThrottleStore(REDIS_URL, prefix=redis_prefix, clock=clock),
        failures=3,
        user_failures=100,
        window_s=900,
        lock_s=30,
    )
    sign_in = HfSignIn("https://hub.test", transport=httpx.MockTransport(hub), throttle=throttle)

    def script(token: str, address: str) -> SimpleNamespace:
        return SimpleNamespace(
            scope={"type": "http"},
            headers={"authorization": f"Bearer {token}"},
            client=SimpleNamespace(host=address),
        )

    for index in range(3):
        assert sign_in.user(script(f"hf_guess{index}", "203.0.113.5")) is None
    assert hub.calls == 3
    with pytest.raises(LimitReached, match="try again in 30 s") as refused:
        sign_in.user(script("hf_guess3", "203.0.113.5"))
    assert refused.value.retry_after_s == 30.0
    assert hub.calls == 3  # the Hub was not asked about the fourth guess
    assert sign_in.user(script("hf_ada", "198.51.100.1")) == "ada"  # elsewhere: unaffected
    hub.status = 503  # an outage is no one's failure
    for index in range(5):
        assert sign_in.user(script(f"hf_other{index}", "198.51.100.2")) is None
    hub.status = None
    assert sign_in.user(script("hf_ada", "198.51.100.2")) == "ada"


def test_a_flood_of_sign_ins_from_many_addresses_leaves_turns_alone(
    start_app: StartApp,
) -> None:
    app = start_app(auth=PAIRS, signin_failures=2, signin_user_failures=50)
    ada = Client(app.url, auth=("ada", "lovelace-1843"), verbose=False)
    session = uuid.uuid4().hex

    async def flood() -> list[int]:
        async with httpx.AsyncClient(base_url=app.url, timeout=60) as http:

            async def guess(index: int) -> int:
                response = await http.post(
                    "/login",
                    data={"username": "alan", "password": f"guess-{index}"},
                    headers={"X-Forwarded-For": f"10.{index // 250}.{index % 250}.1"},
                )
                return response.status_code

            return await asyncio.gather(*(guess(i) for i in range(300)))

    async def both() -> tuple[list[int], list[str]]:
        flooding = asyncio.create_task(flood())
        replies = [
            (
                await asyncio.to_thread(
                    ada.predict, f"Turn {n}.", "curie", session, False, api_name="/chat"
                )
            )["text"]
            for n in range(3)
        ]
        return await flooding, replies

    statuses, replies = asyncio.run(both())
    assert set(statuses) <= {400, 429} and 400 in statuses and 429 in statuses
    assert all(reply.startswith(f"You said Turn {n}") for n, reply in enumerate(replies))
    # After the flood, alan's name is locked for new devices, and ada's turns still run.
    assert login(app.url, "alan", "turing 1936", "192.0.2.99").status_code == 429
    assert ada.predict("After.", "curie", session, False, api_name="/chat")["text"].startswith(
        "You said After"
    )


def test_signing_out_ends_the_persons_sessions_on_every_replica(
    start_app: StartApp, tmp_path: Path
) -> None:
    # Two replicas sharing one Redis (each its own Qdrant Edge folder: a shard has one owner).
    first, second = start_app(auth=PAIRS), start_app(auth=PAIRS, data_dir=tmp_path)
    here = httpx.Client(base_url=first.url, timeout=30)
    there = httpx.Client(base_url=second.url, timeout=30)
    for http in (here, there):
        signed_in = http.post("/login", data={"username": "ada", "password": "lovelace-1843"})
        assert signed_in.status_code == 200 and http.get("/config").status_code == 200
    copied = httpx.Client(base_url=second.url, timeout=30, cookies=dict(there.cookies))
    alan = httpx.Client(base_url=second.url, timeout=30)
    alan.post("/login", data={"username": "alan", "password": "turing 1936"})

    assert here.get("/logout").status_code in (200, 302, 307)
    assert here.get("/config").status_code == 401
    # The other replica never saw the sign-out request, yet her sessions there are over too,
    # a copied cookie included; another person's session is not.
    assert there.get("/config").status_code == 401
    assert copied.get("/config").status_code == 401
    assert alan.get("/config").status_code == 200
    # Signing in again afterwards works as before.
    assert there.post("/login", data={"username": "ada", "password": "lovelace-1843"}).json()[
        "success"
    ]
    assert there.get("/config").status_code == 200
    for http in (here, there, copied, alan):
        http.close()


def hf_replica(sign_outs: RedisSignOuts) -> ThreadedServer:
    """What a Space's replica does with a Hugging Face sign-in: Gradio's signed session cookie
    (one OAuth secret for all replicas) and its login and logout routes, with the sign-out guard
    inside the session middleware as chattr puts it."""

    async def callback(request: Request) -> JSONResponse:
        now = int(time.time())
        request.session["oauth_info"] = {
            "expires_at": now + 28_800,
            "expires_in": 28_800,
            "userinfo": {"preferred_username": request.query_params["name"]},
        }
        return JSONResponse({})

    async def logout(request: Request) -> JSONResponse:
        request.session.pop("oauth_info", None)  # all Gradio's own /logout does
        return JSONResponse({})

    async def who(request: Request) -> JSONResponse:
        return JSONResponse({"user": session_user(request.session)})

    app = Starlette(
        routes=[
            Route("/login/callback", callback),
            Route("/logout", logout),
            Route("/who", who),
        ],
        middleware=[
            Middleware(SessionMiddleware, secret_key="one-secret-for-the-space"),
            Middleware(SignOutGuard, sign_outs=sign_outs, tokens=dict),
        ],
    )
    return ThreadedServer(app).start()


def test_a_hugging_face_sign_out_ends_copied_session_cookies_on_other_replicas(
    redis_prefix: str,
) -> None:
    sign_outs = RedisSignOuts(REDIS_URL, prefix=redis_prefix)
    first, second = hf_replica(sign_outs), hf_replica(sign_outs)
    try:
        browser = httpx.Client(base_url=first.url, timeout=30)
        browser.get("/login/callback", params={"name": "ada"})
        other = httpx.Client(base_url=second.url, timeout=30)
        other.get("/login/callback", params={"name": "alan"})
        copied = httpx.Client(base_url=second.url, timeout=30, cookies=dict(browser.cookies))
        assert copied.get("/who").json()["user"] == "ada"  # the signed cookie works anywhere

        browser.get("/logout")
        assert browser.get("/who").json()["user"] is None
        assert copied.get("/who").json()["user"] is None  # elsewhere, with the old cookie
        assert other.get("/who").json()["user"] == "alan"
        for client in (browser, other, copied):
            client.close()
    finally:
        first.stop()
        second.stop()
        sign_outs.close()
