"""The services' files at chattr's own address: `/vocalizr/files/<id>`, `/visualizr/files/<id>`.

Services that chattr starts listen on 127.0.0.1, which a browser on another machine cannot reach;
relayed through chattr, every URL of a reply is under the page's origin, whatever proxy or host
name the page is served under. Only the services' own file ids pass; Range requests pass through,
so a browser can seek.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from chattr.media.clients import ServiceClient

log = logging.getLogger(__name__)

REQUEST_HEADERS = ("range", "if-range", "if-none-match", "if-modified-since", "accept")
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "cache-control",
)
AUDIO_FORMATS = frozenset({"wav", "mp3", "ogg"})  # vocalizr's `?format=`

# The ids of the services' files (vocalizr's WAVs, visualizr's MP4s): nothing else is relayed.
SERVICE_FILE_ID = {
    "vocalizr": re.compile(r"[0-9a-f]{32}\.wav"),
    "visualizr": re.compile(r"[0-9a-f]{32}\.mp4"),
}


def service_file_id(service: str, url: str) -> str | None:
    """The file id in a URL a service gave out (`…/files/<id>`), if it is one of its ids."""
    path = urlsplit(url).path
    head, _, file_id = path.rpartition("/")
    if not head.endswith("/files") or not SERVICE_FILE_ID[service].fullmatch(file_id):
        return None
    return file_id


def add_relay_routes(
    app: FastAPI, clients: Mapping[str, ServiceClient], *, skip: Collection[str] = ()
) -> None:
    """A route per relayed service (name → its client), except those mounted here already
    (in-process, on a Space)."""
    for name, client in sorted(clients.items()):
        if f"/{name}" in skip:
            continue
        app.add_api_route(
            f"/{name}/files/{{file_id}}",
            _relay_endpoint(name, client),
            methods=["GET"],
            include_in_schema=False,
        )


def _relay_endpoint(
    name: str, client: ServiceClient
) -> Callable[[str, Request], Awaitable[Response]]:
    pattern = SERVICE_FILE_ID[name]

    async def relay(file_id: str, request: Request) -> Response:
        if not pattern.fullmatch(file_id):
            return JSONResponse({"detail": f"no {name} file '{file_id}'"}, status_code=404)
        params = {}
        audio_format = request.query_params.get("format")
        if name == "vocalizr" and audio_format in AUDIO_FORMATS:
            params["format"] = audio_format
        headers = {h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers}
        upstream = client.http.build_request(
            "GET", f"{client.base_url}/files/{file_id}", params=params, headers=headers
        )
        try:
            response = await client.http.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            log.warning("relay of a %s file failed: %s", name, exc)
            return JSONResponse({"detail": f"{name} is unreachable"}, status_code=502)
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers={h: response.headers[h] for h in RESPONSE_HEADERS if h in response.headers},
            background=BackgroundTask(response.aclose),
        )

    return relay
