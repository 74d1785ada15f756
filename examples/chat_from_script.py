"""Talk to a Chatacter character from a script, through the Gradio client API.

    python examples/chat_from_script.py --url http://127.0.0.1:7860 --character einstein \
        --out replies/ "What did you get the Nobel Prize for?" "And what about relativity?"

Each reply's text is printed; its joined audio (WAV) and video (MP4) are downloaded into --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client


def download(url: str | None, destination: Path) -> Path | None:
    """Save a media URL to a file; None when the reply has no such media."""
    if not url:
        return None
    response = httpx.get(url, timeout=60)
    response.raise_for_status()
    destination.write_bytes(response.content)
    return destination


def converse(
    url: str, character: str, messages: list[str], out: Path, *, media: bool = True
) -> list[dict[str, Any]]:
    """Send the messages as one conversation; return the replies (and save their media)."""
    client = Client(url, verbose=False)
    known = {c["id"]: c for c in client.predict(api_name="/characters")}
    if character not in known:
        raise SystemExit(f"no character '{character}'; known: {', '.join(sorted(known))}")
    print(f"{known[character]['name']}: {known[character]['greeting']}\n")
    out.mkdir(parents=True, exist_ok=True)
    session_id = ""
    replies = []
    for turn, message in enumerate(messages, 1):
        reply = client.predict(
            message=message,
            character=character,
            session_id=session_id,
            media=media,
            api_name="/chat",
        )
        session_id = reply["session_id"]
        print(f"you: {message}\n{known[character]['name']}: {reply['text']}")
        audio = download(reply["audio_url"], out / f"turn{turn}.wav")
        video = download(reply["video_url"], out / f"turn{turn}.mp4")
        for saved in (audio, video):
            if saved is not None:
                print(f"  saved {saved}")
        for error in reply["errors"]:
            print(f"  note: {error['service']}: {error['detail']}")
        print()
        replies.append(reply)
    return replies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("messages", nargs="+", help="what to say, one turn each")
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="where chattr runs")
    parser.add_argument("--character", default="einstein", help="character id")
    parser.add_argument("--out", type=Path, default=Path("replies"), help="folder for media")
    parser.add_argument("--text-only", action="store_true", help="no speech or video")
    args = parser.parse_args(argv)
    converse(args.url, args.character, args.messages, args.out, media=not args.text_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
