"""The runtime as a package: its public API, its cost to import, its types and style, and
its module graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nexo_plugin_runtime
import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "template" / "runtime"
PACKAGE = RUNTIME / "src" / "nexo_plugin_runtime"
BIN = Path(sys.executable).parent


def test_the_author_api_is_all_of_all_and_each_name_resolves() -> None:
    homes = nexo_plugin_runtime._HOMES  # noqa: SLF001 (the package's own table, checked)
    assert nexo_plugin_runtime.__all__ == sorted(homes)
    for name in nexo_plugin_runtime.__all__:
        assert getattr(nexo_plugin_runtime, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        nexo_plugin_runtime.nope  # noqa: B018
    assert set(dir(nexo_plugin_runtime)) >= set(nexo_plugin_runtime.__all__)
    assert (PACKAGE / "py.typed").exists()


def test_importing_the_api_loads_neither_asyncio_nor_the_sdk() -> None:
    probe = (
        "import sys\n"
        "from nexo_plugin_runtime import PluginContext, InboundEvent, Secret, process\n"
        "print(sorted({'asyncio', 'nexo_plugin_sdk', 'typing'} & set(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-X", "frozen_modules=on", "-c", probe], capture_output=True, text=True
    )
    assert loaded.stdout.strip() == "['typing']", loaded.stderr


def test_the_runtime_is_ruff_clean_and_mypy_strict() -> None:
    config = str(RUNTIME / "pyproject.toml")
    for command in (
        [str(BIN / "ruff"), "check", "--no-cache", "--config", config, str(RUNTIME)],
        [str(BIN / "ruff"), "format", "--no-cache", "--check", "--config", config, str(RUNTIME)],
        [str(BIN / "mypy"), "--config-file", config, str(RUNTIME / "src")],
    ):
        run = subprocess.run(command, capture_output=True, text=True, cwd=RUNTIME)
        assert run.returncode == 0, run.stdout + run.stderr


def imports_of(path: Path) -> set[str]:
    """The runtime modules `path` imports, at run time (not under TYPE_CHECKING)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
        ".__init__"
    )
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        elif (node.module or "").startswith("nexo_plugin_runtime"):
            base = node.module or ""
        else:
            continue
        for alias in node.names:  # `from . import config` imports the module config
            candidate = f"{base}.{alias.name}"
            found.add(
                candidate
                if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                else base
            )
    return found - {module}


def test_the_modules_import_each_other_without_a_cycle() -> None:
    graph = {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        ): imports_of(path)
        for path in PACKAGE.rglob("*.py")
    }
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join([*trail, module])
        state[module] = "open"
        for target in graph.get(module, ()):
            visit(target, [*trail, module])
        state[module] = "done"

    for module in graph:
        visit(module, [])
    assert graph["nexo_plugin_runtime.frames"] == set()  # the early answer needs nothing else
