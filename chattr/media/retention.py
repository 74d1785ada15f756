"""Deleting joined replies, and pieces a crash left behind, once they are past retention."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Joined replies (`<hex>.wav`, `<hex>.mp4`) and a reply video's pieces while it is being joined
# (`.<hex>-<n>.mp4`, `.<hex>.mp4.part`). Nothing else in the folder is touched.
MEDIA_NAME = re.compile(r"[0-9a-f]{32}\.(wav|mp4)|\.[0-9a-f]{32}(-\d+\.mp4|\.mp4\.part)")


def purge_media(directory: Path, older_than_s: float) -> int:
    """Delete media files last written more than `older_than_s` ago; returns how many."""
    cutoff = time.time() - older_than_s
    removed = 0
    for path in directory.iterdir():
        try:
            if MEDIA_NAME.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # gone meanwhile (a join that finished, another purge)
    if removed:
        log.info("deleted %d expired media files", removed)
    return removed
