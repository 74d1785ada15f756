"""Deleting joined replies, and pieces a crash left behind, once they are past retention.

The sweep and its loop are the service kit's (`chatacter_common.service.retention`), the same
that deletes vocalizr's and visualizr's own files; only the names are chattr's.
"""

from __future__ import annotations

import re
from pathlib import Path

from chatacter_common.service.retention import purge_expired

# Joined replies (`<hex>.wav`, `<hex>.mp4`) and a reply video's pieces while it is being joined
# (`.<hex>-<n>.mp4`, `.<hex>.mp4.part`). Nothing else in the folder is touched.
MEDIA_NAME = re.compile(r"[0-9a-f]{32}\.(wav|mp4)|\.[0-9a-f]{32}(-\d+\.mp4|\.mp4\.part)")


def purge_media(directory: Path, older_than_s: float) -> int:
    """Delete media files last written more than `older_than_s` ago; returns how many."""
    return purge_expired(directory, MEDIA_NAME, older_than_s, "media files")
