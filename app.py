"""Hugging Face Space entry point (`app_file` in the README's front matter).

Secrets and variables come from the Space's settings: GROQ_API_KEY, and optionally
CHATTR_VOCALIZR_URL / CHATTR_VISUALIZR_URL for remote media services (see README, "Hugging Face
Space"). Locally: `python app.py`.
"""

from __future__ import annotations

import logging

import uvicorn

from chattr.run.space import build_space_app
from chattr.settings import get_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = get_settings()
app = build_space_app(settings)

if __name__ == "__main__":
    # X-Forwarded-* are chattr's to judge (CHATTR_TRUSTED_PROXIES), not uvicorn's; open event
    # streams get a few seconds at shutdown, not for ever.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
