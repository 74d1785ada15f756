"""Headless Chromium for the page tests: Debian's chromium (`make browser-deps`), kept quiet."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox (root in CI), no GPU, and none of the background traffic a test has no use for.
QUIET_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def chromium() -> str:
    """Chromium's path; the test fails, saying how to install it, where it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make browser-deps` installs Debian's chromium")
    return CHROMIUM


def chromium_args(*extra: str) -> list[str]:
    """The quiet arguments, and a test's own."""
    return [*QUIET_ARGS, *extra]
