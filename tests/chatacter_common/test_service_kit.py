"""The service kit on its own: the file store and its retention, the engine registry, the CLI's
address flags and lower priority. In-process and fast, but for one child process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from pydantic import BaseModel

from chatacter_common.service import (
    EngineRegistry,
    FileNotFound,
    FileStore,
    Health,
    UnknownEngine,
    purge_expired,
    purge_period_s,
    purge_periodically,
)
from chatacter_common.service.cli import parse_address


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_store_serves_only_its_own_ids(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files", ".mp4")
    file_id, path = store.new_path()
    assert re.fullmatch(r"[0-9a-f]{32}\.mp4", file_id) and path.parent == store.directory
    assert store.find(file_id) is None  # not written yet
    path.write_bytes(b"video")
    assert store.path_of(file_id) == path
    for name in ("../secret.mp4", file_id.replace(".mp4", ".wav"), file_id.upper()):
        with pytest.raises(FileNotFound, match=r"ids look like <32 hex digits>\.mp4"):
            store.path_of(name)


def test_retention_deletes_expired_files_derived_and_partial_but_nothing_else(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path, ".wav", derived=(".mp3",))
    hex_id = "ab" * 16
    old = [tmp_path / f"{hex_id}{end}" for end in (".wav", ".mp3", ".wav.part")]
    fresh = tmp_path / f"{'cd' * 16}.wav"
    foreign = [tmp_path / "notes.txt", tmp_path / f"{hex_id}.mp4"]
    for path in (*old, fresh, *foreign):
        path.write_bytes(b"x")
        age(path, 3600)
    age(fresh, 0)
    assert store.purge(older_than_s=60) == 3
    assert not any(path.exists() for path in old)
    assert fresh.exists() and all(path.exists() for path in foreign)
    assert purge_expired(tmp_path, re.compile(r"notes\.txt"), 60) == 1


def test_the_purge_period_is_bounded_both_ways() -> None:
    assert purge_period_s(3600, 7 * 86400) == 60.0
    assert purge_period_s(10, 3600) == 5.0
    assert purge_period_s(0.001) == 0.25  # never a busy loop


def test_a_failing_sweep_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    sweeps: list[str] = []

    def failing() -> None:
        sweeps.append("failing")
        raise PermissionError("the folder is read-only now")

    def working() -> None:
        sweeps.append("working")

    async def run_a_while() -> None:
        with anyio.move_on_after(0.3):
            await purge_periodically([failing, working], 0.05)

    anyio.run(run_a_while)
    assert sweeps.count("working") >= 2 and sweeps.count("failing") >= 2
    assert "read-only" in caplog.text


def test_health_is_settled_once_loading_ends_either_way() -> None:
    def broken() -> tuple[str, str]:
        raise RuntimeError("no weights")

    loaded, failed = Health(), Health()
    assert not loaded.settled.is_set()
    assert loaded.load(lambda: ("warp", "cpu"), "failed") and loaded.settled.is_set()
    assert not failed.load(broken, "the engine failed to load") and failed.settled.is_set()
    assert failed.load_error == "the engine failed to load: no weights" and not failed.ready


def test_the_registry_builds_by_name_and_names_the_known_ones() -> None:
    registry = EngineRegistry[str, str](
        "test engine", "TEST_ENGINE", {"upper": str.upper, "lower": str.lower}
    )
    assert sorted(registry) == ["lower", "upper"] and "upper" in registry
    assert registry.create("upper", "Ada") == "ADA"
    with pytest.raises(UnknownEngine, match=r"'nope' \(TEST_ENGINE\); known: lower, upper"):
        registry.create("nope", "Ada")


def test_an_engine_registered_later_is_created_by_name_and_names_are_not_replaced() -> None:
    registry = EngineRegistry[str, str]("test engine", "TEST_ENGINE", {"upper": str.upper})
    registry.register("title", str.title)
    assert registry.create("title", "ada lovelace") == "Ada Lovelace"
    with pytest.raises(ValueError, match="already registered as 'upper'"):
        registry.register("upper", str.lower)
    assert registry.create("upper", "Ada") == "ADA"


class Listening(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8001
    other: str = "kept"


def test_the_cli_flags_override_the_settings_address() -> None:
    settings = parse_address(Listening(), ["--port", "9100"], prog="svc", description="A service.")
    assert (settings.host, settings.port, settings.other) == ("127.0.0.1", 9100, "kept")
    settings = parse_address(Listening(), ["--host", "0.0.0.0"], prog="svc", description="")
    assert (settings.host, settings.port) == ("0.0.0.0", 8001)


# Run in a child process: a niceness once raised cannot be lowered again without privileges.
# Little runs after the lowering: at niceness 19 the process gets about 1/70 of a core that
# anything else in the session wants, so a Python child or a slow import there would make this
# test as slow as the machine is busy. `cat` reads the child's niceness (field 19 of its stat),
# and the process ends without the interpreter's teardown. The thread from before is a daemon, so
# a failure ends the process instead of hanging it. A session in the kernel's default autogroup
# (one no process since boot has left with setsid, as in some CI containers) shows an empty
# autogroup file and has no niceness of its own to lower.
LOWER_PRIORITY = """
import json, os, subprocess, sys, threading
from pathlib import Path
from chatacter_common.service.cli import lower_priority

def niceness(tid: int = 0) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)

def session_niceness() -> int | None:  # None: the kernel's default group, which has none
    shown = Path("/proc/self/autogroup").read_text().split()  # "/autogroup-85 nice 0"
    return int(shown[-1]) if shown else None

done = threading.Event()
earlier = threading.Thread(target=done.wait, daemon=True)  # from before, as imports start them
earlier.start()
base, base_session = niceness(), session_niceness()
now = lower_priority(int(sys.argv[1]))
threads = [niceness(int(task.name)) for task in Path("/proc/self/task").iterdir()]
later: list[int] = []
thread = threading.Thread(target=lambda: later.append(niceness()))
thread.start()
thread.join()
stat = subprocess.run(["cat", "/proc/self/stat"], capture_output=True, text=True, check=True)
child = int(stat.stdout.rsplit(")", 1)[1].split()[16])  # the fields after "(comm)": nice is 19th
done.set()
print(json.dumps({"base": base, "now": now, "threads": threads, "later": later[0],
                  "child": child, "base_session": base_session,
                  "session": session_niceness()}), flush=True)
os._exit(0)  # an interpreter's teardown at niceness 19 can take many seconds on a busy machine
"""


@pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="per-thread niceness, autogroups: Linux"
)
@pytest.mark.parametrize(("steps", "own_session"), [(3, True), (25, False)])
def test_a_lower_priority_reaches_every_thread_child_and_own_session(
    steps: int, own_session: bool
) -> None:
    try:
        ran = subprocess.run(
            [sys.executable, "-c", LOWER_PRIORITY, str(steps)],
            capture_output=True,
            text=True,
            timeout=300,
            start_new_session=own_session,
        )
    except subprocess.TimeoutExpired:  # name what held the cores
        busiest = ["ps", "-eo", "pid,sid,ni,pcpu,etime,args", "--sort=-pcpu"]
        pytest.fail(subprocess.run(busiest, capture_output=True, text=True).stdout[:3000])
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    expected = min(19, seen["base"] + steps)  # 19 is as low as it goes
    assert seen["now"] == expected
    assert len(seen["threads"]) == 2 and set(seen["threads"]) == {expected}
    assert seen["later"] == expected and seen["child"] == expected
    # Its own session competes with other sessions' programs as a whole, so it is lowered too;
    # a session it shares (this test's) is left alone.
    if own_session:  # setsid gives a session an autogroup of its own
        assert seen["base_session"] is not None
        assert seen["session"] == min(19, seen["base_session"] + steps)
    else:
        assert seen["session"] == seen["base_session"]
