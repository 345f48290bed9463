"""The harness's fixtures. Follows the template; your own fixtures (the environment the
plugin starts in, local servers) live in plugin_fixtures.py, which is yours."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host import PluginHost, read_manifest

pytest_plugins = ["plugin_fixtures"]


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return read_manifest()


@pytest.fixture
def host(tmp_path: Path, plugin_env: dict[str, str]) -> Iterator[PluginHost]:
    """A running plugin, spawned from an unrelated working directory like the daemon does."""
    with PluginHost(cwd=tmp_path, env=plugin_env) as plugin:
        yield plugin


@pytest.fixture
def ready(host: PluginHost) -> PluginHost:
    """A plugin that has answered initialize."""
    host.initialize()
    return host
