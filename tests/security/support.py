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
        return self.run(fn_index, trigger, dependency, data)

    def run(
        self, fn_index: int, trigger: int, dependency: dict[str, Any], data: list[Any]
    ) -> dict[str, Any]:
        """Run one of the page's events by its index and trigger (see `event`)."""
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
                            if component not in self.stored:
                                continue
                            if isinstance(value, dict) and value.get("__type__") == "update":
                                if "value" not in value:  # gr.skip(): the browser keeps its own
                                    continue
                                value = value["value"]
                            self.stored[component] = value
                    return message
        raise AssertionError("the event never completed")

    def close(self) -> None:
        self.http.close()


def click(page: Page, label: str, data: list[Any]) -> dict[str, Any]:
    """Click the page's button labelled `label` (the event's `process_completed` message); its
    gr.BrowserState inputs are what the page stored, as for `Page.event`."""
    ids = [c["id"] for c in page.config["components"] if c.get("props", {}).get("value") == label]
    assert ids, f"no button {label!r}"
    for dependency in page.config["dependencies"]:
        if [ids[0], "click"] in [list(target) for target in dependency["targets"]]:
            return page.run(dependency["id"], ids[0], dependency, data)
    raise AssertionError(f"no click event on {label!r}")


def download(page: Page) -> dict[str, Any]:
    """The page's download: the JSON export and the readable one, both of the same turns."""
    downloaded = page.event("chattr-download", "click", [None])
    assert downloaded["success"], downloaded
    files = downloaded["output"]["data"][0]
    files = files.get("value", files) if isinstance(files, dict) else files
    by_suffix = {item["orig_name"].rsplit(".", 1)[1]: item for item in files}
    data: dict[str, Any] = page.http.get(by_suffix["json"]["url"]).json()
    readable = page.http.get(by_suffix["md"]["url"]).text
    for turn in data["turns"]:
        assert turn["assistant"] in readable and turn["user"] in readable
    return data
