"""The import layering, read from the source with `ast`: no cycles among the project's modules
(imports inside functions and under TYPE_CHECKING count too); the services import neither chattr
nor each other; only chattr's Space entry imports the services; chattr's arrows point one way."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("chattr", "vocalizr", "visualizr", "chatacter_common")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imported_names(path: Path, module: str) -> Iterator[tuple[str, int]]:
    """Every module name an import statement anywhere in the file names, with its line; for
    `from a import b`, `a.b` too (b may be a submodule)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if not is_package:
                    package.pop()
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


@cache
def graph() -> dict[str, dict[str, int]]:
    """module → {project module it imports: line}; `from a import b` counts as importing a.b
    when a.b is a module, else a. A package's own __init__ run by importing its submodule is not
    counted: that is how Python works, not a choice of the code."""
    known = modules()
    edges: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        targets: dict[str, int] = {}
        names = list(imported_names(path, module))
        for name, line in names:
            if name in known:
                targets.setdefault(name, line)
        # `from a import b` where b is a name in a, not a module: the edge is to a, already there.
        edges[module] = {t: line for t, line in targets.items() if t != module}
    return edges


def cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def imports_of(prefix: str) -> Iterator[tuple[str, str, int]]:
    """(importer, imported, line) for every import by a module in `prefix` (a package)."""
    for module, targets in graph().items():
        if module == prefix or module.startswith(prefix + "."):
            for target, line in targets.items():
                yield module, target, line


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_is_read() -> None:
    # A guard for the test itself: a broken reader would find no cycles anywhere.
    edges = graph()
    assert "chattr.turn.service" in edges["chattr.run.assembly"]
    assert "chattr.media.fanout" in edges["chattr.turn.service"]  # under TYPE_CHECKING
    assert "chattr.knowledge.qdrant_server" in edges["chattr.knowledge"]  # inside a function
    assert "chattr.characters.world_info" in edges["chattr.turn.service"]  # module import


def test_no_import_cycles() -> None:
    assert cycles() == []


@pytest.mark.parametrize("service", ["vocalizr", "visualizr"])
def test_the_services_import_neither_chattr_nor_each_other(service: str) -> None:
    others = [p for p in ("chattr", "vocalizr", "visualizr") if p != service]
    wrong = [
        f"{module}:{line} imports {target}"
        for module, target, line in imports_of(service)
        if any(in_package(target, other) for other in others)
    ]
    assert wrong == []


def test_the_shared_code_imports_none_of_the_programs() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, target, line in imports_of("chatacter_common")
        if not in_package(target, "chatacter_common")
    ]
    assert wrong == []


def test_only_the_space_entry_imports_the_services_from_chattr() -> None:
    # chattr.media.local_stack starts them as child processes (`python -m vocalizr`): no import.
    wrong = [
        f"{module}:{line} imports {target}"
        for module, target, line in imports_of("chattr")
        if module != "chattr.run.space"
        and (in_package(target, "vocalizr") or in_package(target, "visualizr"))
    ]
    assert wrong == []


# chattr's layers by package, lowest first: a module may import its own layer's and lower layers'.
# What a turn produces, and what chattr refuses ← what a turn uses (characters, media, access,
# memory, the LLM) ← knowledge (which reads the characters) ← the turn ← scenes (turns of
# several characters) ← voice ← the web edge
# (which lays out the voice controls) ← running it. `chattr.settings` is read by every layer and
# belongs to none.
LAYERS = [
    ["chattr.reply", "chattr.refusal"],
    ["chattr.characters", "chattr.media", "chattr.access", "chattr.memory", "chattr.llm"],
    ["chattr.knowledge"],
    ["chattr.turn"],
    ["chattr.scene"],
    ["chattr.voice"],
    ["chattr.web"],
    ["chattr.run", "chattr.__main__"],
]


def layer_of(module: str) -> int | None:
    for number, members in enumerate(LAYERS):
        if any(in_package(module, member) for member in members):
            return number
    return None


def test_chattrs_layers_point_one_way() -> None:
    wrong = []
    for module, target, line in imports_of("chattr"):
        here, there = layer_of(module), layer_of(target)
        if here is not None and there is not None and there > here:
            wrong.append(f"{module}:{line} imports {target}, a layer above it")
    assert wrong == []


def test_what_a_turn_produces_imports_nothing_of_chattrs() -> None:
    assert graph()["chattr.reply"] == {}
    assert graph()["chattr.refusal"] == {}


def test_the_media_import_only_the_media_and_what_a_turn_produces() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, target, line in imports_of("chattr.media")
        if in_package(target, "chattr")
        and not in_package(target, "chattr.media")
        and target != "chattr.reply"
    ]
    assert wrong == []


def test_every_chattr_package_has_a_layer() -> None:
    # A new package must say where it stands, or the rule above would not see it.
    packages = {m.split(".")[1] for m in modules() if m.startswith("chattr.") and m.count(".") >= 1}
    unplaced = sorted(
        p
        for p in packages
        if layer_of(f"chattr.{p}") is None and p not in {"settings", "testing", "__main__"}
    )
    assert unplaced == []


def test_the_product_never_imports_the_test_stand_ins() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, target, line in imports_of("chattr")
        if not in_package(module, "chattr.testing") and in_package(target, "chattr.testing")
    ]
    assert wrong == []
