"""docker-compose.yml read against the programs it runs (no Docker engine runs here).

Every service's command is a console script of ours that accepts the flags given, listens on the
port that is published and health-checked, and every environment variable is a real setting.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
OURS = ("chattr", "vocalizr", "visualizr")


class _ComposeLoader(yaml.SafeLoader):
    """Compose's YAML, with its `!reset` / `!override` tags."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)
_ComposeLoader.add_constructor(
    "!override", lambda loader, node: loader.construct_object(node, deep=True)
)


def load(name: str) -> dict[str, Any]:
    data = yaml.load((REPO / name).read_text(), Loader=_ComposeLoader)
    assert isinstance(data, dict)
    return data


COMPOSE = load("docker-compose.yml")
SERVICES: dict[str, Any] = COMPOSE["services"]


def settings_fields(program: str) -> set[str]:
    """The environment variable names a program's Settings class reads."""
    module = __import__(f"{program}.settings", fromlist=["Settings"])
    settings = module.Settings
    prefix = settings.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings.model_fields.items():
        names.add(f"{prefix}{name}".upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            names.add(str(choice).upper())
    return names


ALL_SETTINGS = set().union(*(settings_fields(p) for p in OURS))


def test_the_stack_has_its_five_services_with_restart_and_health_checks() -> None:
    assert set(SERVICES) == {"chattr", "vocalizr", "visualizr", "qdrant", "redis"}
    for name, service in SERVICES.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert "healthcheck" in service, name
    assert SERVICES["qdrant"]["image"].startswith("qdrant/qdrant")
    assert SERVICES["redis"]["image"].startswith("redis")


def test_named_volumes_are_declared_and_dependencies_exist() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name}: volume {source} not declared"
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"


@pytest.mark.slow
@pytest.mark.parametrize("program", OURS)
def test_each_program_command_exists_and_takes_its_flags(program: str) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    command = SERVICES[program]["command"]
    assert command[0] == program and program in scripts
    help_text = subprocess.run(
        [sys.executable, "-m", program, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (arg for arg in command[1:] if arg.startswith("--")):
        assert flag in help_text, f"{program} has no {flag}"


@pytest.mark.parametrize("program", OURS)
def test_ports_agree_between_command_publishing_health_check_and_peers(program: str) -> None:
    service = SERVICES[program]
    command = service["command"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    published = [p.rsplit(":", 1)[-1] for p in service["ports"]]
    assert port in published
    if program != "chattr":  # the media services: this host's loopback only
        for mapping in service["ports"]:
            assert str(mapping).startswith("127.0.0.1:"), f"{program} published on {mapping}"
    assert f":{port}/healthz" in " ".join(service["healthcheck"]["test"])
    # Other services reach it by its compose name and that port.
    for other in SERVICES.values():
        for value in (other.get("environment") or {}).values():
            match = re.fullmatch(rf"http://{program}:(\d+)", str(value))
            if match:
                assert match.group(1) == port


@pytest.mark.parametrize("program", OURS)
def test_environment_names_are_real_settings(program: str) -> None:
    for name in SERVICES[program].get("environment", {}):
        assert name in ALL_SETTINGS, f"{program}: {name} is not a setting of any program"


def test_env_example_names_only_real_settings_and_compose_variables() -> None:
    compose_text = (REPO / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{(\w+)", compose_text))
    names = set()
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.lstrip("# ").strip()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            names.add(line.split("=", 1)[0])
    assert names, "no variables in .env.example"
    unknown = names - ALL_SETTINGS - interpolated
    assert not unknown, f"unknown variables in .env.example: {unknown}"
    assert interpolated <= names, f"compose variables not in .env.example: {interpolated - names}"


def test_engines_named_in_compose_and_env_example_exist() -> None:
    from visualizr.engines import ENGINES as VIDEO_ENGINES
    from vocalizr.engines import ENGINES as SPEECH_ENGINES

    text = "\n".join(
        (REPO / name).read_text()
        for name in ("docker-compose.yml", "docker-compose.cpu.yml", ".env.example")
    )
    for variable, engines in (("VOCALIZR", SPEECH_ENGINES), ("VISUALIZR", VIDEO_ENGINES)):
        named = re.findall(rf"{variable}_ENGINE[:=]\s*(?:\$\{{\w+:-)?(\w+)", text)
        assert len(named) >= 3
        assert set(named) <= set(engines), f"unknown {variable} engines in {named}"


def test_cpu_override_only_touches_our_media_services() -> None:
    override = load("docker-compose.cpu.yml")["services"]
    assert set(override) == {"vocalizr", "visualizr"}
    for service in override.values():
        assert service["deploy"] is None  # `!reset` drops the GPU reservation


def test_dockerfile_copies_what_exists() -> None:
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_copies_every_package_pyproject_ships() -> None:
    """An image without one of them cannot start any program (each imports chatacter_common)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "chatacter_common" in shipped
    dockerfile = (REPO / "Dockerfile").read_text()
    missing = [
        package
        for package in shipped
        if not re.search(rf"^COPY {package}/? \./{package}/?$", dockerfile, re.MULTILINE)
    ]
    assert not missing, f"the Dockerfile does not copy {missing} to where pyproject.toml has it"


def test_media_services_get_their_keys_and_peers_send_them() -> None:
    """One .env variable per key: the service guards with it, chattr and visualizr send it."""
    import chattr.settings
    import visualizr.settings
    import vocalizr.settings

    environment = {name: SERVICES[name].get("environment", {}) for name in OURS}
    for program, key in (("vocalizr", "VOCALIZR_API_KEY"), ("visualizr", "VISUALIZR_API_KEY")):
        assert environment[program][key] == f"${{{key}:-}}"
        assert environment["chattr"][f"CHATTR_{key}"] == f"${{{key}:-}}"
    assert environment["visualizr"]["VISUALIZR_VOCALIZR_API_KEY"] == "${VOCALIZR_API_KEY:-}"
    # and each name is read as a secret by the program it is given to
    assert "api_key" in vocalizr.settings.Settings.model_fields
    assert "api_key" in visualizr.settings.Settings.model_fields
    assert "vocalizr_api_key" in visualizr.settings.Settings.model_fields
    for field in ("vocalizr_api_key", "visualizr_api_key"):
        assert field in chattr.settings.Settings.model_fields
    # visualizr may fetch audio from vocalizr's compose address (its allow-list default)
    vocalizr_url = environment["visualizr"]["VISUALIZR_VOCALIZR_URL"]
    assert visualizr.settings.Settings(vocalizr_url=vocalizr_url).audio_addresses() == {
        ("vocalizr", 8001)
    }


def test_check_compose_script_parses_and_runs_the_compose_files_services() -> None:
    """scripts/check_compose.sh is run by hand (it builds an 8 GB image); here: it parses, and
    the services and variables it names are the compose files' own."""
    script = REPO / "scripts" / "check_compose.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "-f docker-compose.yml -f docker-compose.cpu.yml" in text
    (services,) = re.findall(r"up -d --no-build ([\w ]+)", text)
    assert set(services.split()) == {"vocalizr", "visualizr"}
    assert set(services.split()) <= set(SERVICES)
    interpolated = set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    exported = {
        word.split("=")[0]
        for line in re.findall(r"^export (.+)$", text, re.MULTILINE)
        for word in line.split()
    }
    assert exported == {
        "VOCALIZR_PORT",
        "VISUALIZR_PORT",
        "VOCALIZR_PUBLIC_URL",
        "VISUALIZR_PUBLIC_URL",
        "VOCALIZR_API_KEY",
        "VISUALIZR_API_KEY",
    }
    assert exported <= interpolated
