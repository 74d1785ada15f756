"""The Space's app.py: it builds the same page and API, and launches on a free port, both ways."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import yaml
from gradio_client import Client

from chattr.media.local_stack import LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import REPO
from .conftest import Launch
from .proxy import forwarding_transport

pytestmark = pytest.mark.slow


def front_matter() -> dict[str, Any]:
    text = (REPO / "README.md").read_text()
    assert text.startswith("---\n"), "README.md has no front matter for the Space"
    meta: dict[str, Any] = yaml.safe_load(text.split("---\n")[1])
    return meta


def test_readme_front_matter_describes_the_space() -> None:
    import gradio

    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    assert (REPO / meta["app_file"]).is_file()
    assert str(meta["python_version"]).startswith("3.11")
    requirements = (REPO / "requirements.txt").read_text()
    assert "-r requirements.lock" in requirements


def check_turn(url: str, llm: FakeLLMServer) -> dict[str, Any]:
    client = Client(url, verbose=False)
    ids = {c["id"] for c in client.predict(api_name="/characters")}
    assert {"napoleon", "einstein"} <= ids
    llm.script("Science is a wonderful thing. It binds us all together.")
    result: dict[str, Any] = client.predict("Hello", "einstein", "", True, api_name="/chat")
    assert result["text"] == "Science is a wonderful thing. It binds us all together."
    assert result["errors"] == []
    assert result["segments"] and all(s["video_url"] for s in result["segments"])
    for link in (result["audio_url"], result["video_url"]):
        assert httpx.get(link).status_code == 200
    return result


def test_app_py_with_remote_media_services(
    launch: Launch, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    url = launch(
        CHATTR_VOCALIZR_URL=media_stack.vocalizr.url,
        CHATTR_VISUALIZR_URL=media_stack.visualizr.url,
    )
    result = check_turn(url, llm)
    assert result["segments"][0]["audio_url"].startswith(media_stack.vocalizr.url)


def test_app_py_with_the_engines_in_process(launch: Launch, llm: FakeLLMServer) -> None:
    url = launch(VOCALIZR_ENGINE="piper", VISUALIZR_ENGINE="warp")
    deadline = time.monotonic() + 120
    while httpx.get(url + "/vocalizr/healthz").status_code != 200 or (
        httpx.get(url + "/visualizr/healthz").status_code != 200
    ):
        assert time.monotonic() < deadline, "in-process engines did not load"
        time.sleep(0.5)
    result = check_turn(url, llm)
    assert result["segments"][0]["audio_url"].startswith(url + "/vocalizr/files/")
    assert result["segments"][0]["video_url"].startswith(url + "/visualizr/files/")


def test_app_py_as_a_space_runs_it_answers_urls_at_the_space_host_that_load(
    launch: Launch, llm: FakeLLMServer
) -> None:
    host = "someone-chatacter.hf.space"
    url = launch(
        GRADIO_SERVER_NAME="0.0.0.0",
        SPACE_HOST=host,
        SPACE_ID="someone/chatacter",
        VOCALIZR_ENGINE="piper",
        VISUALIZR_ENGINE="warp",
    )
    # The Space's ingress: TLS outside, plain HTTP to the container, X-Forwarded-Proto: https.
    ingress = httpx.Client(mounts={f"https://{host}": forwarding_transport(url, host=host)})
    deadline = time.monotonic() + 120
    while any(
        ingress.get(f"https://{host}/{name}/healthz").status_code != 200
        for name in ("vocalizr", "visualizr")
    ):
        assert time.monotonic() < deadline, "in-process engines did not load"
        time.sleep(0.5)
    llm.script("Science is a wonderful thing. It binds us all together.")
    result = Client(url, verbose=False).predict("Hello", "einstein", "", True, api_name="/chat")
    assert result["errors"] == [], result["errors"]
    urls = [result["audio_url"], result["video_url"]]
    for segment in result["segments"]:
        urls += [segment["audio_url"], segment["video_url"]]
    assert len(urls) == 6 and all(u.startswith(f"https://{host}/") for u in urls), urls
    assert result["segments"][0]["audio_url"].startswith(f"https://{host}/vocalizr/files/")
    assert result["segments"][0]["video_url"].startswith(f"https://{host}/visualizr/files/")
    for link in urls:
        response = ingress.get(link)
        assert response.status_code == 200 and response.content, link
    # The page Gradio serves through the ingress names its own files at the Space's address.
    config = ingress.get(f"https://{host}/config").json()
    assert config["root"] == f"https://{host}"
