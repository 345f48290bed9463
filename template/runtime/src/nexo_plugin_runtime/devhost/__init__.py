"""The dev host, `uv run nexo-dev`: a nexo daemon on the author's desk.

It spawns the plugin as the daemon does (from the checkout, or `--installed` from a packed
tarball, read-only), does the handshake, and shows every frame both ways with its timing,
the plugin's stderr apart, and what the daemon would drop or refuse (checks.py). The author
sends broker events and tool calls (checked against the tool's input_schema) at a prompt
(console.py), from an `--events` file, or from the web inspector (web.py, `--web`). The
plugin's requests are answered from nexo-dev.toml (settings.py, answers.py) or a real model
(`--llm-url`); the APIs it calls, from the same file's HTTP stub (stub.py). The plugin
restarts when its source changes (reload.py), the log going on. `--record` writes the
session down, and `--replay` (or `replay_recording` in a test)
plays it again and compares (recording.py).

For the plugin's project only: the release tarball leaves this package out.
"""

from .recording import replay_recording

__all__ = ["replay_recording"]
