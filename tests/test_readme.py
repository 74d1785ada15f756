"""The README documents every setting the three programs read."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("program", ["chattr", "vocalizr", "visualizr"])
def test_every_setting_is_in_the_readme_table(program: str) -> None:
    settings = importlib.import_module(f"{program}.settings").Settings
    prefix = settings.model_config.get("env_prefix", "")
    missing = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names = [str(c) for c in getattr(alias, "choices", [])] or [f"{prefix}{name}".upper()]
        missing += [n for n in names if f"`{n}`" not in README]
    assert not missing, f"settings missing from README.md: {missing}"


def test_the_readme_gives_the_two_set_up_commands() -> None:
    assert "make run" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
