"""Plugins run inside the test process, over real pipes, for the runtime's own tests.

A plugin package is written to a temporary folder (its handlers.py given as text, its
manifest from a few arguments), then started by the runtime's own `process.serve()` in a
thread, exactly as bin/<id> starts it after fencing stdout: the start checks, the early
`initialize` answer, the session on the SDK's types. The test plays the daemon with the
runtime's `DaemonSide` on the other ends of the pipes. What differs from a process: no
stdout fence and no logging set-up (records reach pytest's caplog), no signal handlers.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from nexo_plugin_runtime import manifest as manifests
from nexo_plugin_runtime import process
from nexo_plugin_runtime.testing import DaemonSide

_numbers = itertools.count()

# A bound on how long a stop may take in these tests, loose enough for a loaded machine:
# a plugin that did not cut its stop short would take the 30 s its handlers sleep, or never
# stop. That the grace itself ends before the daemon's SIGKILL is test_session's to check.
STOPS_PROMPTLY = 5.0


def write_plugin(
    folder: Path,
    handlers: str,
    *,
    kinds: tuple[str, ...] = ("chan",),
    tools: tuple[str, ...] = (),
    env: tuple[str, ...] = (),
) -> manifests.Manifest:
    """A plugin under `folder` whose handlers.py is `handlers` (dedented), declaring the
    channel `kinds`, the tools `tools` (full names) and the required settings `env`, and
    importable from this process. Each gets its own id, so modules never clash."""
    plugin_id = f"inproc_{next(_numbers)}"
    root = folder / plugin_id
    package = root / "src" / plugin_id
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A plugin of the runtime\'s tests."""\n')
    (package / "handlers.py").write_text(textwrap.dedent(handlers).replace("ID", plugin_id))
    lines = [
        "[plugin]",
        f'id = "{plugin_id}"',
        'version = "1.2.3"',
        'name = "In process"',
        'description = "A plugin of the runtime\'s tests."',
        'min_nexo_version = ">=0.1.0"',
        "[plugin.requires]",
        f"env = {json.dumps([name.replace('ID', plugin_id.upper()) for name in env])}",
    ]
    for kind in kinds:
        lines += ["[[plugin.channels.register]]", f'kind = "{kind}"', f'adapter = "{plugin_id}"']
    if tools:
        names = [name.replace("ID", plugin_id) for name in tools]
        lines += ["[plugin.extends]", f"tools = {json.dumps(names)}"]
    (root / "nexo-plugin.toml").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(root / "src"))
    data = manifests.parse((root / "nexo-plugin.toml").read_bytes(), str(root))
    return manifests.Manifest(data, str(root), plugin_id)


class InProcessPlugin(DaemonSide):
    """A plugin served by process.serve() in a thread of this process (see the module)."""

    def __init__(self, manifest: manifests.Manifest, *, timeout: float = 5.0) -> None:
        self.manifest = manifest
        self.exit_code: int | None = None
        stdin_read, stdin_write = os.pipe()
        frames_read, frames_write = os.pipe()
        self._thread = threading.Thread(
            target=self._serve, args=(stdin_read, frames_write), daemon=True
        )
        super().__init__(
            os.fdopen(stdin_write, "wb"),
            os.fdopen(frames_read, "rb"),
            None,
            plugin_id=manifest.id,
            timeout=timeout,
        )
        self._thread.start()

    def _serve(self, stdin_read: int, frames_write: int) -> None:
        try:  # serve() closes frames_write, however it ends
            self.exit_code = process.serve(
                self.manifest, frames_write, stdin_fd=stdin_read, signals=False
            )
        finally:
            os.close(stdin_read)

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code serve() returned, once it has (None if it has not in time)."""
        self._thread.join(self.timeout if timeout is None else timeout)
        return self.exit_code

    def __enter__(self) -> InProcessPlugin:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close_stdin()
        self._thread.join(self.timeout)
        assert not self._thread.is_alive(), "the plugin did not stop when its stdin closed"
