"""Retention: produced files are deleted once they are older than a service keeps them.

One sweep (`purge_expired`) and one loop (`purge_periodically`) for vocalizr's audio, visualizr's
videos and chattr's joined replies. A sweep touches only names its pattern matches, so nothing
else that lives in the folder is ever deleted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

log = logging.getLogger(__name__)

# Sweeps run at least once a minute, at least twice per retention period, and never in a busy
# loop however short the retention is set.
LONGEST_PERIOD_S = 60.0
SHORTEST_PERIOD_S = 0.25


def purge_expired(
    directory: Path, names: re.Pattern[str], older_than_s: float, what: str = "files"
) -> int:
    """Delete the files in `directory` whose names match `names` fully and that were last
    written more than `older_than_s` ago; returns how many."""
    cutoff = time.time() - older_than_s
    removed = 0
    for path in directory.iterdir():
        try:
            if names.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # removed meanwhile (a write that finished, another sweep)
    if removed:
        log.info("deleted %d expired %s", removed, what)
    return removed


def purge_period_s(*retentions_s: float) -> float:
    """How often to sweep, for the shortest of the retention periods given."""
    return min(LONGEST_PERIOD_S, max(SHORTEST_PERIOD_S, min(retentions_s) / 2))


async def purge_periodically(purges: Sequence[Callable[[], object]], period_s: float) -> None:
    """Run each sweep in a worker thread every `period_s`, for as long as the task lives.

    A sweep that fails (a folder gone, a permission taken away) is logged and tried again next
    time; it never ends the loop, nor the app that runs it.
    """
    while True:
        for purge in purges:
            try:
                await anyio.to_thread.run_sync(purge)
            except OSError as error:
                log.warning("could not delete expired files: %s", error)
        await anyio.sleep(period_s)
