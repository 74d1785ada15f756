"""Talk to several Chatacter characters at once (a scene), through the Gradio client API.

    python examples/scene.py --url http://127.0.0.1:7860 --characters napoleon,einstein \
        "Napoleon, what do you make of Einstein's physics?" "And you, Einstein?"

Each message goes to `/scene`; the replies stream in under their speakers' names, one after
another, and each reply's media URLs are printed once made: its speech (WAV) and its video (MP4).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gradio_client import Client


def say(
    client: Client,
    message: str,
    characters: list[str],
    session_id: str,
    names: dict[str, str],
    *,
    strategy: str = "natural",
    speaker: str = "",
    media: bool = True,
) -> dict[str, Any]:
    """Send one message to the scene; print the replies as they stream; return the last result."""
    job = client.submit(
        message=message,
        characters=characters,
        session_id=session_id,
        media=media,
        strategy=strategy,
        speaker=speaker,
        api_name="/scene",
    )
    greeted = asked = False
    printed: list[int] = []  # how much of each reply's text is on the screen
    for partial in job:
        if partial["greetings"] and not greeted:  # a new scene opens with them
            for greeting in partial["greetings"]:
                print(f"{names[greeting['character']]}: {greeting['text']}\n")
            greeted = True
        for index, reply in enumerate(partial["replies"]):
            if not asked and message:
                print(f"you: {message}")
                asked = True
            if index == len(printed):  # the next speaker takes the floor
                print(f"\n{names[reply['character']]}: ", end="")
                printed.append(0)
            text = reply["text"]
            print(text[printed[index] :], end="", flush=True)
            printed[index] = len(text)
    result: dict[str, Any] = job.result()
    print("\n")
    for reply in result["replies"]:
        name = names[reply["character"]]
        if reply["audio_url"] or reply["video_url"]:
            print(f"  {name}: audio {reply['audio_url']}\n  {name}: video {reply['video_url']}")
    for error in result["errors"]:
        print(f"  note: {error['service']}: {error['detail']}")
    print()
    return result


def converse(
    url: str,
    characters: list[str],
    messages: list[str],
    *,
    strategy: str = "natural",
    speaker: str = "",
    media: bool = True,
) -> list[dict[str, Any]]:
    """Send the messages as one scene; return each message's result."""
    client = Client(url, verbose=False)
    names = {c["id"]: c["name"] for c in client.predict(api_name="/characters")}
    unknown = [c for c in characters if c not in names]
    if unknown:
        raise SystemExit(
            f"no character {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}"
        )
    session_id = ""
    results = []
    for message in messages:
        result = say(
            client,
            message,
            characters,
            session_id,
            names,
            strategy=strategy,
            speaker=speaker,
            media=media,
        )
        session_id = result["session_id"]
        results.append(result)
    return results


def member_ids(text: str) -> list[str]:
    """`--characters`: one argument, the ids with commas between (spaces would run on into the
    messages)."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("name the members' ids, e.g. napoleon,einstein")
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("messages", nargs="+", help="what to say to the scene, one message each")
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="where chattr runs")
    parser.add_argument(
        "--characters",
        type=member_ids,
        default=["napoleon", "einstein"],
        help="the members' ids, two or more, in the scene's order, with commas between "
        "(napoleon,einstein)",
    )
    parser.add_argument(
        "--strategy",
        default="natural",
        choices=["natural", "list", "pooled", "manual"],
        help="who answers (natural: those named, then each by its talkativeness)",
    )
    parser.add_argument("--speaker", default="", help="a member's id: that member alone answers")
    parser.add_argument("--text-only", action="store_true", help="no speech or video")
    args = parser.parse_args(argv)
    converse(
        args.url,
        args.characters,
        args.messages,
        strategy=args.strategy,
        speaker=args.speaker,
        media=not args.text_only,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
