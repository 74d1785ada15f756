"""Driving the page's own events over raw HTTP (as the browser does): upload, queue/join, SSE."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx


def find_event(
    config: dict[str, Any], elem_id: str | None, event: str
) -> tuple[int, int, dict[str, Any]]:
    """(fn_index, component id, the dependency) of the page event `event` on the component
    `elem_id` (None: the page itself, for `load`)."""
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert ids or elem_id is None, f"no component {elem_id}"
    for dependency in config["dependencies"]:
        for target, name in dependency["targets"]:
            if (elem_id is None or target == ids[0]) and name == event:
                return int(dependency["id"]), ids[0], dependency
    raise AssertionError(f"no {event} event on {elem_id}")


class Page:
    """One browser session on the page, over HTTP; it keeps the page's gr.BrowserState values
    as a browser's localStorage does."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.Client(base_url=url, headers=headers or {}, timeout=60)
        self.config = self.http.get("/config").json()
        self.session_hash = uuid.uuid4().hex
        self.stored: dict[int, Any] = {
            c["id"]: None for c in self.config["components"] if c["type"] == "browserstate"
        }

    def upload(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as handle:
            response = self.http.post(
                "/gradio_api/upload", files={"files": (path.name, handle, "application/json")}
            )
        response.raise_for_status()
        return {
            "path": response.json()[0],
            "orig_name": path.name,
            "meta": {"_type": "gradio.FileData"},
        }

    def event(self, elem_id: str | None, event: str, data: list[Any]) -> dict[str, Any]:
        """Run the event; the `process_completed` message (its `output` and `success`).

        A gr.State input is the server's value for this page session, whatever `data` says; a
        gr.BrowserState input given as None (or left out at the end) is what the page stored."""
        fn_index, trigger, dependency = find_event(self.config, elem_id, event)
        data = [*data, *[None] * (len(dependency["inputs"]) - len(data))]
        for index, component in enumerate(dependency["inputs"]):
            if component in self.stored and data[index] is None:
                data[index] = self.stored[component]
        joined = self.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": fn_index,
                "trigger_id": trigger,
                "session_hash": self.session_hash,
                "event_data": None,
            },
        )
        joined.raise_for_status()
        with self.http.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message: dict[str, Any] = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    if message.get("success"):
                        outputs = zip(
                            dependency["outputs"], message["output"]["data"], strict=False
                        )
                        for component, value in outputs:
                            if component in self.stored:
                                self.stored[component] = value
                    return message
        raise AssertionError("the event never completed")

    def close(self) -> None:
        self.http.close()
