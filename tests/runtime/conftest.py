"""Fixtures of the runtime's tests: plugins started in this process (harness.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import InProcessPlugin, write_plugin

Start = Callable[..., InProcessPlugin]


@pytest.fixture
def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[Start]:
    """start(handlers, settings={...}, initialize=True, **manifest): a running plugin.
    "ID" in handlers, setting names and manifest names is the plugin's id (in capitals in
    setting names), "{root}" in setting values its folder; its state folder is under
    tmp_path unless the settings say otherwise."""
    started: list[InProcessPlugin] = []
    caplog.set_level(logging.INFO)  # what the plugins log, as its stderr would show it

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
            monkeypatch.setenv(name.replace("ID", prefix), value.replace("{root}", written.root))
        plugin = InProcessPlugin(written)
        started.append(plugin)
        if initialize:
            plugin.initialize()
        return plugin

    yield run
    for plugin in started:
        plugin.__exit__()
