"""Durable state: one JSON document per name in the plugin's private state folder.

    seen = plugin.state("seen", default={"ids": []})
    document = seen.load()
    seen.save(document)

A save is atomic and durable: the document goes to a temporary file in the same folder,
which is flushed to disk (fsync) and then renamed over the old one, and the folder is
synced too, so a crash or a power cut leaves the old document or the new one, never half
of one. The temporary file is created without following symlinks, mode 0600. A file that
cannot be read back (empty after a crash between write and sync, or corrupt) never refuses
the start: it is set aside as `<name>.json.corrupt-<time>`, a warning says so, and the
default is used.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Generic, TypeVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

T = TypeVar("T")
log = logging.getLogger(__name__.split(".", 1)[0])


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class StateFile(Generic[T]):
    """One JSON document that outlives restarts (see the module's docstring)."""

    def __init__(self, path: Path, default: T) -> None:
        self.path = path
        self._default = json.dumps(default, allow_nan=False)

    def load(self) -> T:
        """The saved document, or a fresh copy of the default when there is none (or it had
        to be set aside)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return self.default()
        try:
            if not data.strip():
                raise ValueError("it is empty (a crash before it reached the disk?)")
            value: T = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as error:
            kept = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(self.path, kept)
            log.warning(
                "state file %s cannot be read (%s): kept as %s, starting from the default",
                self.path,
                error,
                kept.name,
            )
            return self.default()
        return value

    def default(self) -> T:
        value: T = json.loads(self._default)
        return value

    def save(self, value: T) -> None:
        """Replace the document, atomically and durably."""
        data = json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(partial, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.replace(partial, self.path)
        except OSError:
            partial.unlink(missing_ok=True)
            raise
        _sync_folder(self.path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the system allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def open_state(folder: Path, name: str, default: Any) -> StateFile[Any]:
    """The StateFile `name` in `folder`; ValueError for a name that is not a plain file name."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"state name {name!r}: use a plain file name such as 'seen'")
    return StateFile(folder / f"{name}.json", default)
