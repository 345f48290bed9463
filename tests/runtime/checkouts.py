"""Plugin checkouts on disk for the runtime's tests that run real processes: the
template's main.py, given handlers, a manifest, and a launcher bin/proc that runs this
interpreter, as a generated plugin's launcher runs its environment's."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from nexo_plugin_runtime.integrity import hashes_listing

TEMPLATE = Path(__file__).resolve().parents[2] / "template"
MAIN = TEMPLATE / "src" / "{{ package_name }}" / "main.py"
INITIALIZE = b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}\n'
MANIFEST = """[plugin]
id = "proc"
version = "0.3.0"
name = "Process"
description = "The runtime's process tests."
min_nexo_version = ">=0.1.0"

[[plugin.channels.register]]
kind = "proc"
adapter = "proc"
"""


def copy_runtime(destination: Path) -> Path:
    """A copy of the template's runtime/ with its listing, leaving out what tools leave in
    it (bytecode, mypy's and ruff's caches), which another test may be writing meanwhile."""
    litter = shutil.ignore_patterns("__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    shutil.copytree(TEMPLATE / "runtime", destination, ignore=litter)
    (destination / "FILES.sha256").write_text(hashes_listing(str(destination)))
    return destination


def plugin_tree(
    folder: Path,
    handlers: str,
    *,
    runtime: bool = False,
    requires: tuple[str, ...] = (),
    tools: tuple[str, ...] = (),
) -> Path:
    """A plugin checkout: the manifest (requiring the settings `requires`, extended with
    the tools `tools`), src/proc/ with the template's main.py and these handlers,
    bin/proc, and (with `runtime`) a copy of the runtime with its listing."""
    package = folder / "src" / "proc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(MAIN, package / "main.py")
    (package / "handlers.py").write_text(handlers)
    manifest = MANIFEST + f"\n[plugin.requires]\nenv = {json.dumps(list(requires))}\n"
    if tools:
        manifest += f"\n[plugin.extends]\ntools = {json.dumps(list(tools))}\n"
    (folder / "nexo-plugin.toml").write_text(manifest)
    launcher = folder / "bin" / "proc"
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m proc.main "$@"\n')
    launcher.chmod(0o755)
    if runtime:
        copy_runtime(folder / "runtime")
    return folder


def command(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "proc.main", *args]


def environment(folder: Path, **extra: str) -> dict[str, str]:
    """This process's environment, with the checkout importable and its state under it."""
    return {
        **os.environ,
        "PYTHONPATH": str(folder / "src"),
        "PROC_STATE_DIR": str(folder / "state"),
        **extra,
    }
