"""Restart the plugin when its source changes: the plugin's package, the runtime, the
manifest. Polled (a stat of each file twice a second), which needs nothing native and
sees every editor's way of saving."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


def snapshot(project: Path) -> dict[Path, tuple[int, int]]:
    """(mtime, size) of each watched file."""
    files = [project / "nexo-plugin.toml"]
    for folder in (project / "src", project / "runtime" / "src"):
        files.extend(folder.rglob("*.py"))
    seen = {}
    for path in files:
        try:
            status = path.stat()
        except OSError:  # removed while listed
            continue
        seen[path] = (status.st_mtime_ns, status.st_size)
    return seen


class SourceWatcher:
    """Calls `on_change(description)` after files under `project` change, until stop()."""

    def __init__(
        self, project: Path, on_change: Callable[[str], object], interval: float = 0.5
    ) -> None:
        self.project, self.on_change, self.interval = project, on_change, interval
        self._stopped = threading.Event()
        self._seen = snapshot(project)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            now = snapshot(self.project)
            changed = sorted(
                path
                for path in now.keys() | self._seen.keys()
                if now.get(path) != self._seen.get(path)
            )
            self._seen = now
            if changed:
                names = ", ".join(str(path.relative_to(self.project)) for path in changed[:3])
                more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                self.on_change(f"{names}{more} changed")

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
