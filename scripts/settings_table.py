"""Print the README's settings tables from the three programs' Settings classes.

.venv/bin/python scripts/settings_table.py
"""

from __future__ import annotations

import importlib

from pydantic_core import PydanticUndefined


def env_names(prefix: str, name: str, field: object) -> list[str]:
    alias = getattr(field, "validation_alias", None)
    choices = getattr(alias, "choices", None)
    if choices:
        return [str(c) for c in choices]
    return [f"{prefix}{name}".upper()]


def default_text(field: object) -> str:
    default = getattr(field, "default", None)
    if default is PydanticUndefined or getattr(field, "default_factory", None):
        return "(see meaning)"
    if default is None:
        return "unset"
    return f"`{default}`"


def main() -> None:
    for program in ("chattr", "vocalizr", "visualizr"):
        settings = importlib.import_module(f"{program}.settings").Settings
        prefix = settings.model_config.get("env_prefix", "")
        print(f"\n#### {program}\n")
        print("| variable | default | meaning |")
        print("| --- | --- | --- |")
        for name, field in settings.model_fields.items():
            names = " / ".join(f"`{n}`" for n in env_names(prefix, name, field))
            meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
            print(f"| {names} | {default_text(field)} | {meaning} |")


if __name__ == "__main__":
    main()
