"""The plugin's files as the process finds them: nexo-plugin.toml and the plugin's package.

The plugin's package is `src/<id>/` in a checkout and `lib/<id>/` once installed; either
way nexo-plugin.toml sits two folders above it. Standard library only, and nothing but os
and sys until the manifest is parsed: `--print-manifest` is answered with these alone.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MANIFEST_FILE = "nexo-plugin.toml"


class Manifest:
    """nexo-plugin.toml, parsed, and where the plugin lives."""

    def __init__(self, data: dict[str, Any], root: str, package: str) -> None:
        self.data = data
        self.root = root
        self.package = package

    @property
    def id(self) -> str:
        plugin_id: str = self.data["plugin"]["id"]
        return plugin_id

    @property
    def version(self) -> str:
        version: str = self.data["plugin"]["version"]
        return version

    @property
    def path(self) -> str:
        return os.path.join(self.root, MANIFEST_FILE)


def plugin_root(package: str | None) -> str:
    """The plugin's folder: two above the package `package` (already imported)."""
    if not package or package not in sys.modules:
        raise SystemExit(
            "run the plugin as bin/<id> (or `python -m <id>.main`), so that its package is known"
        )
    module_file = sys.modules[package].__file__
    if module_file is None:  # a namespace package: no __init__.py
        raise SystemExit(f"{package} has no __init__.py; the plugin's package needs one")
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(module_file))))


def read_bytes(root: str) -> bytes:
    try:
        with open(os.path.join(root, MANIFEST_FILE), "rb") as manifest:
            return manifest.read()
    except OSError as error:
        raise SystemExit(
            f"cannot read the plugin manifest: {error}. Run the plugin through bin/<id> in its "
            f"project checkout or installed folder, where {MANIFEST_FILE} sits beside bin/."
        ) from None


def parse(data: bytes, where: str) -> dict[str, Any]:
    """The manifest, read as the SDK reads it (tomllib, or tomli before Python 3.11)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    try:
        document: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
        plugin = document["plugin"]
        if isinstance(plugin["id"], str) and isinstance(plugin["version"], str):
            return document
        problem = "plugin.id and plugin.version must be strings"
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
    raise SystemExit(f"{where}: not a usable manifest ({problem})")


def load(package: str | None) -> Manifest:
    root = plugin_root(package)
    assert package is not None  # plugin_root() checked it
    return Manifest(parse(read_bytes(root), os.path.join(root, MANIFEST_FILE)), root, package)
