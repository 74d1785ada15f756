"""The services' shared settings: one base, empty variables as unset, one file-URL rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatacter_common.service import ServiceSettings
from visualizr.settings import Settings as VisualizrSettings
from vocalizr.settings import Settings as VocalizrSettings

Kind = type[VocalizrSettings] | type[VisualizrSettings]
SERVICES: list[Kind] = [VocalizrSettings, VisualizrSettings]


@pytest.mark.parametrize(
    ("kind", "port", "data_dir"),
    [(VocalizrSettings, 8001, "data/vocalizr"), (VisualizrSettings, 8002, "data/visualizr")],
)
def test_both_services_share_the_base_and_keep_their_own_prefix_and_defaults(
    kind: Kind,
    port: int,
    data_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    prefix = str(kind.model_config.get("env_prefix"))
    monkeypatch.setenv(f"{prefix}WORKERS", "3")
    monkeypatch.setenv("WORKERS", "5")  # the base reads nothing unprefixed
    settings = kind()
    assert issubclass(kind, ServiceSettings) and settings.workers == 3
    assert set(ServiceSettings.model_fields) <= set(kind.model_fields)
    assert (settings.port, settings.data_dir) == (port, Path(data_dir))


@pytest.mark.parametrize("kind", SERVICES)
def test_an_empty_variable_or_env_file_entry_is_unset(
    kind: Kind, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    prefix = str(kind.model_config.get("env_prefix"))
    # As `.env.example` ships them: copied, not filled in.
    (tmp_path / ".env").write_text(f"{prefix}API_KEY=\n{prefix}PUBLIC_URL=\n{prefix}ENGINE=\n")
    for name in ("PORT", "MAX_QUEUE", "UI", "WORKERS"):  # empty where an int or bool is wanted
        monkeypatch.setenv(f"{prefix}{name}", "")
    settings = kind()
    default = kind.model_fields
    assert settings.api_key is None and settings.public_url is None
    assert settings.engine == default["engine"].default
    assert (settings.port, settings.max_queue, settings.ui, settings.workers) == (
        default["port"].default,
        default["max_queue"].default,
        True,
        1,
    )


def test_visualizr_empty_allowed_hosts_fall_back_to_vocalizr_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISUALIZR_ALLOWED_AUDIO_HOSTS", "")
    monkeypatch.setenv("VISUALIZR_VOCALIZR_URL", "http://vocalizr:8001")
    assert VisualizrSettings().audio_addresses() == {("vocalizr", 8001)}


@pytest.mark.parametrize(
    ("host", "public_url", "request_base", "files_base"),
    [
        # All interfaces: the address the caller used, which reaches this server from where the
        # caller is (127.0.0.1 would be the caller's own machine).
        ("0.0.0.0", None, "http://10.1.2.3:8001/", "http://10.1.2.3:8001"),
        ("::", None, "http://speech.lan:8001/", "http://speech.lan:8001"),
        ("0.0.0.0", None, "https://chat.example/vocalizr/", "https://chat.example/vocalizr"),
        # One address: that address, whatever the caller wrote.
        ("127.0.0.1", None, "http://localhost:8001/", "http://127.0.0.1:8001"),
        ("::1", None, "http://localhost:8001/", "http://[::1]:8001"),
        # The public URL above all.
        ("0.0.0.0", "https://media.example/speech/", "http://10.1.2.3:8001/", ""),
    ],
)
def test_the_file_url_rule(
    host: str, public_url: str | None, request_base: str, files_base: str
) -> None:
    for kind in SERVICES:
        settings = kind(host=host, port=8001, public_url=public_url)
        expected = files_base or "https://media.example/speech"
        assert settings.files_base(request_base) == expected
