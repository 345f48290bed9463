"""A program run in a pseudo-terminal, as a person at a keyboard runs it: what it shows is
read as it comes, what is typed is written to the terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping, Sequence


class Terminal:
    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: str) -> None:
        self._main, attached = pty.openpty()
        self.process = subprocess.Popen(
            command,
            stdin=attached,
            stdout=attached,
            stderr=attached,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
        os.close(attached)
        self.shown = ""

    def type(self, line: str) -> None:
        os.write(self._main, line.encode() + b"\n")

    def wait_for(self, text: str, timeout: float = 15.0, after: int = 0) -> int:
        """Wait until `text` is shown (after character `after`); where it ends."""
        deadline = time.monotonic() + timeout
        while (found := self.shown.find(text, after)) < 0:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} was not shown; the terminal shows:\n{self.shown}")
        return found + len(text)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._main], [], [], min(timeout, 0.2))
        if ready:
            try:
                data = os.read(self._main, 65536)
            except OSError:  # the program ended and closed the terminal
                return False
            if not data:
                return False
            self.shown += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def close(self) -> int:
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self._main)
