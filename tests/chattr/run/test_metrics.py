"""chattr's `/metrics`, scraped over HTTP after real turns, behind its bearer key."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chattr.media.local_stack import free_port
from chattr.testing.fake_llm import FakeLLMServer

from ...conftest import StartApp

KEY = "scrape-key-1"


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `/metrics`, by name and labels."""
    answer = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_a_turn_is_counted_timed_and_its_failed_part_named(
    start_app: StartApp, llm: FakeLLMServer
) -> None:
    # vocalizr's address answers nothing: the reply comes as text, its speech fails.
    app = start_app(vocalizr_url=f"http://127.0.0.1:{free_port()}", metrics_key=KEY)
    before = scrape(app.url)
    assert before[("chattr_turns_in_flight", frozenset())] == 0
    llm.script("The snow was deep. We won at Marengo.")
    result = app.client().predict("Tell me of Marengo.", "napoleon", "", True, api_name="/chat")
    assert result["text"] == "The snow was deep. We won at Marengo."
    assert [e["service"] for e in result["errors"]] == ["vocalizr"], result["errors"]

    after = scrape(app.url)
    assert after[("chattr_turns_total", frozenset({("outcome", "done")}))] == 1
    for stage in ("first_text", "full_reply"):
        count = after[("chattr_turn_seconds_count", frozenset({("stage", stage)}))]
        assert count == 1, stage
    # No speech came, so no time to first audio was observed.
    assert ("chattr_turn_seconds_count", frozenset({("stage", "first_audio")})) not in after
    for step in ("memory_read", "knowledge", "memory_write"):
        assert after[("chattr_step_seconds_count", frozenset({("step", step)}))] == 1, step
    assert after[("chattr_turn_errors_total", frozenset({("part", "vocalizr")}))] == 1
    assert after[("chattr_turns_in_flight", frozenset())] == 0

    # A turn whose LLM fails ends in the refusal the person sees; the done one stays one.
    llm.script(500, 500, 500)
    with pytest.raises(Exception, match="language model failed"):
        app.client().predict("Hello.", "napoleon", "", False, api_name="/chat")
    failed = scrape(app.url)
    assert failed[("chattr_turns_total", frozenset({("outcome", "refused")}))] == 1
    assert failed[("chattr_turns_total", frozenset({("outcome", "done")}))] == 1
    assert failed[("chattr_turns_in_flight", frozenset())] == 0


def test_metrics_need_the_key_when_one_is_set(start_app: StartApp) -> None:
    url = start_app(metrics_key=f"{KEY}, other-scraper").url
    assert httpx.get(url + "/metrics").status_code == 401
    wrong = httpx.get(url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    other = httpx.get(url + "/metrics", headers={"Authorization": "Bearer other-scraper"})
    assert other.status_code == 200 and "chattr_turns_in_flight" in other.text


def test_metrics_are_open_without_a_key(start_app: StartApp) -> None:
    assert httpx.get(start_app().url + "/metrics").status_code == 200
