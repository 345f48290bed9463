"""pytest fixtures for a plugin's tests, loaded by pytest wherever the runtime is installed
(its `pytest11` entry point): `host` (the plugin, spawned the daemon's way) and `ready` (the
same, initialized). A plugin's own tests/conftest.py defines `plugin_env`, the settings the
plugin starts with; the `slow` marker is for tests that pack or install the plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .host import PluginHost, find_project


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: packs or installs the plugin; run with `pytest -m slow` (CI does)"
    )


@pytest.fixture(scope="session")
def plugin_project(pytestconfig: pytest.Config) -> Path:
    """The plugin project under test: where nexo-plugin.toml is, from pytest's root."""
    return find_project(pytestconfig.rootpath)


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """Variables added to the plugin's environment; a plugin's conftest.py overrides it."""
    return {}


@pytest.fixture
def host(plugin_project: Path, tmp_path: Path, plugin_env: dict[str, str]) -> Iterator[PluginHost]:
    """The plugin, spawned from an unrelated working directory like the daemon does."""
    with PluginHost(project=plugin_project, cwd=tmp_path, env=plugin_env) as plugin:
        yield plugin


@pytest.fixture
def ready(host: PluginHost) -> PluginHost:
    """A plugin that has answered initialize."""
    host.initialize()
    return host
