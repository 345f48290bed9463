"""Fixtures of the runtime's tests: plugins started in this process (harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import InProcessPlugin, write_plugin

Start = Callable[..., InProcessPlugin]


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """start(handlers, settings={...}, initialize=True, **manifest): a running plugin.
    "ID" in handlers, setting names and manifest names is the plugin's id (in capitals in
    setting names); its state folder is under tmp_path."""
    started: list[InProcessPlugin] = []

    def run(
        handlers: str,
        *,
        settings: dict[str, str] | None = None,
        initialize: bool = True,
        **manifest: tuple[str, ...],
    ) -> InProcessPlugin:
        written = write_plugin(tmp_path, handlers, **manifest)
        prefix = written.id.upper()
        monkeypatch.setenv(f"{prefix}_STATE_DIR", str(tmp_path / "state"))
        for name, value in (settings or {}).items():
            monkeypatch.setenv(name.replace("ID", prefix), value)
        plugin = InProcessPlugin(written)
        started.append(plugin)
        if initialize:
            plugin.initialize()
        return plugin

    yield run
    for plugin in started:
        plugin.__exit__()
