"""The nexo plugin contract, checked against the real plugin process. Follows the template."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

from host import MANIFEST_PATH, PluginHost, launcher_path


def test_print_manifest_prints_the_manifest_verbatim(tmp_path) -> None:
    # stdin stays an open pipe: the probe must answer without reading it.
    probe = subprocess.Popen(
        [str(launcher_path()), "--print-manifest"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = probe.communicate(timeout=10)
    assert probe.returncode == 0, stderr
    assert stdout == MANIFEST_PATH.read_bytes()


def test_initialize_answers_with_the_manifest(host: PluginHost, manifest: dict[str, Any]) -> None:
    result = host.initialize()
    plugin = manifest["plugin"]
    assert result["manifest"]["plugin"]["id"] == plugin["id"]
    assert result["manifest"] == manifest
    assert result["server_version"] == f"{plugin['id']}-{plugin['version']}"


def test_unknown_method_gets_method_not_found(ready: PluginHost) -> None:
    reply = ready.request("no.such.method", {})
    assert reply["error"]["code"] == -32601


def test_malformed_lines_are_survived(ready: PluginHost) -> None:
    ready.send_line(b"this is not json")
    ready.send_line(b"[1, 2, 3]")
    ready.send_line(b'{"jsonrpc": "2.0", "id": 5, "method": "initialize"')
    ready.send_line(b'{"pad": "' + b"x" * (2 << 20) + b'"}')
    reply = ready.request("initialize", {"nexo_version": "0.1.5"})
    assert "result" in reply
    assert "malformed" in ready.log()


def test_shutdown_replies_ok_then_exits_within_a_second(ready: PluginHost) -> None:
    assert ready.request("shutdown")["result"] == {"ok": True}
    started = time.monotonic()
    assert ready.wait(timeout=5) == 0
    assert time.monotonic() - started < 1.0


def test_closing_stdin_exits_zero(ready: PluginHost) -> None:
    ready.close_stdin()
    assert ready.wait() == 0


def test_sigterm_exits_zero(ready: PluginHost) -> None:
    ready.process.send_signal(signal.SIGTERM)
    assert ready.wait() == 0


def test_stdin_that_is_not_a_pipe_fails_fast_with_a_hint(tmp_path) -> None:
    run = subprocess.run(
        [str(launcher_path())],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
    )
    assert run.returncode != 0
    assert run.stdout == b""
    assert b"stdin is not a pipe or socket" in run.stderr
