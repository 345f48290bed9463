"""Shared fixtures: the manifest and a scripted host started from a neutral directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host import PluginHost, read_manifest


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return read_manifest()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[PluginHost]:
    """A running plugin, spawned from an unrelated working directory like the daemon does."""
    with PluginHost(cwd=tmp_path) as plugin:
        yield plugin


@pytest.fixture
def ready(host: PluginHost) -> PluginHost:
    """A plugin that has answered initialize."""
    host.initialize()
    return host
