"""The nexo plugin contract, checked against the real plugin process. Follows the template.

Nothing here depends on what the plugin does with an event (tests/test_handlers.py, which is
yours, checks that): only on the protocol, the manifest and the process.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from nexo_plugin_sdk import read_manifest as sdk_read_manifest
from nexo_plugin_sdk import wire

from host import (
    MANIFEST_PATH,
    NEXO_VERSION,
    PROJECT_ROOT,
    PluginHost,
    env_prefix,
    launcher_path,
    plugin_id,
    run_plugin,
    strict_json,
)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"nexo_version": NEXO_VERSION},
}


def test_print_manifest_prints_the_manifest_verbatim() -> None:
    # stdin stays an open, empty pipe: the probe must answer without reading it.
    run = run_plugin("--print-manifest", input=None)
    assert run.returncode == 0, run.stderr
    assert run.stdout == MANIFEST_PATH.read_bytes()


def test_python_m_answers_the_probe_too() -> None:
    # `python -m <package>` runs the plugin like bin/<id>, in this environment.
    run = subprocess.run(
        [sys.executable, "-m", plugin_id(), "--print-manifest"],
        capture_output=True,
        cwd=PROJECT_ROOT / "src",
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == MANIFEST_PATH.read_bytes()


def test_handlers_of_older_templates_still_import_from_runtime() -> None:
    runtime = importlib.import_module(f"{plugin_id()}.runtime")
    api = importlib.import_module(f"{plugin_id()}.api")
    assert (runtime.PluginContext, runtime.InboundEvent) == (api.PluginContext, api.InboundEvent)


def test_check_finds_handlers_and_manifest_in_agreement() -> None:
    run = run_plugin("--check")
    assert run.returncode == 0, run.stderr
    assert b"agree" in run.stderr


def test_initialize_reply_is_what_the_sdk_would_send(plugin_env: dict[str, str]) -> None:
    run = run_plugin(input=json.dumps(INITIALIZE).encode() + b"\n", env=plugin_env)
    assert run.returncode == 0, run.stderr
    reply = run.stdout.splitlines(keepends=True)[0]
    manifest = sdk_read_manifest(MANIFEST_PATH.read_text(encoding="utf-8"))
    plugin = manifest["plugin"]
    result: dict[str, Any] = {
        "manifest": manifest,
        "server_version": f"{plugin['id']}-{plugin['version']}",
    }
    if "tools" in strict_json(reply)["result"]:
        result["tools"] = strict_json(reply)["result"]["tools"]
    assert reply == wire.serialize_frame(wire.build_response(1, result)).encode()


def test_a_first_frame_over_64_kib_is_answered(plugin_env: dict[str, str]) -> None:
    padded = {**INITIALIZE, "params": {"nexo_version": NEXO_VERSION, "pad": "x" * (100 * 1024)}}
    run = run_plugin(input=json.dumps(padded).encode() + b"\n", env=plugin_env)
    assert run.returncode == 0, run.stderr
    assert strict_json(run.stdout.splitlines()[0])["id"] == 1


def test_tools_served_are_exactly_the_tools_declared(
    host: PluginHost, manifest: dict[str, Any]
) -> None:
    served = [tool["name"] for tool in host.initialize().get("tools", [])]
    declared = manifest["plugin"].get("extends", {}).get("tools", [])
    assert sorted(served) == sorted(declared)


def test_unknown_method_gets_method_not_found(ready: PluginHost) -> None:
    reply = ready.request("no.such.method", {})
    assert reply["error"]["code"] == -32601


RPC = b'{"jsonrpc": "2.0", '
# Each a frame the daemon should never send, or a line a broken pipe could carry.
HOSTILE_FRAMES = {
    "not-json": b"this is not json",
    "array": b"[1, 2, 3]",
    "truncated": RPC + b'"id": 5, "method": "initialize"',
    "not-utf8": RPC + b'"method": "broker.event", "params": "\xff"}',
    "over-1-mib": b'{"pad": "' + b"x" * (2 << 20) + b'"}',
    "nan-id": RPC + b'"id": NaN, "method": "initialize"}',
    "huge-float-id": RPC + b'"id": 1e400, "method": "initialize"}',
    "huge-integer": RPC + b'"method": "broker.event", "params": ' + b"9" * 5000 + b"}",
    "deep-nesting": RPC + b'"method": "x", "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "list-id-response": RPC + b'"id": [1], "result": {}}',
    "unknown-id-response": RPC + b'"id": 999, "error": {"code": "x"}}',
    "delta-params-list": RPC + b'"method": "llm.complete.delta", "params": [1]}',
    "delta-list-request-id": RPC
    + b'"method": "llm.complete.delta", "params": {"request_id": [1], "chunk": "x"}}',
    "event-params-list": RPC + b'"method": "broker.event", "params": [1]}',
    "event-without-event": RPC + b'"method": "broker.event", "params": {"topic": "x"}}',
    "tool-params-list": RPC + b'"id": 7, "method": "tool.invoke", "params": [1]}',
    "method-not-a-string": RPC + b'"id": 8, "method": 5}',
    "empty-line": b"",
}


@pytest.mark.parametrize("line", list(HOSTILE_FRAMES.values()), ids=list(HOSTILE_FRAMES))
def test_a_hostile_frame_is_survived_and_the_next_is_served(ready: PluginHost, line: bytes) -> None:
    ready.send_line(line)
    ready.send({**INITIALIZE, "id": "after"})
    # Whatever the plugin answers to the hostile frame is strict JSON (the host checks every
    # line), and the request after it is answered.
    while (frame := ready.next_frame()) is not None and frame.get("id") != "after":
        assert "error" in frame or "method" in frame, frame
    assert frame is not None, ready.log()
    assert frame["result"]["manifest"]["plugin"]["id"] == plugin_id()


def test_shutdown_replies_ok_then_exits_within_a_second(ready: PluginHost) -> None:
    assert ready.request("shutdown")["result"] == {"ok": True}
    replied = time.monotonic()
    assert ready.wait(timeout=5) == 0
    assert time.monotonic() - replied < 1.0


def test_closing_stdin_exits_zero(ready: PluginHost) -> None:
    ready.close_stdin()
    assert ready.wait() == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_exits_zero(ready: PluginHost, signum: int) -> None:
    ready.process.send_signal(signum)
    assert ready.wait() == 0


def test_a_closed_stdout_stops_the_plugin(plugin_env: dict[str, str]) -> None:
    # The daemon stopped reading: the plugin notices and exits, without a traceback.
    plugin = subprocess.Popen(
        [str(launcher_path())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **plugin_env},
    )
    assert plugin.stdin is not None
    assert plugin.stdout is not None
    plugin.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
    plugin.stdin.flush()
    assert b'"result"' in plugin.stdout.readline()
    plugin.stdout.close()  # stdin stays open: only the closed stdout may stop it
    try:
        assert plugin.wait(timeout=5) == 0
    finally:
        plugin.kill()
        plugin.stdin.close()
    assert plugin.stderr is not None
    stderr = plugin.stderr.read()
    plugin.stderr.close()
    assert b"stdout closed" in stderr
    assert b"Traceback" not in stderr


def test_stdin_that_is_not_a_pipe_fails_fast_with_a_hint() -> None:
    run = run_plugin(input=None)
    assert run.returncode == 2
    assert run.stdout == b""
    assert b"stdin is not a pipe or socket" in run.stderr


def required_settings() -> list[str]:
    from host import read_manifest

    variables: list[str] = read_manifest()["plugin"].get("requires", {}).get("env", [])
    return [name for name in variables if name.startswith(f"{env_prefix()}_")]


@pytest.mark.parametrize(
    "variable",
    required_settings()
    or [pytest.param("", marks=pytest.mark.skip(reason="no required settings"))],
)
def test_a_missing_setting_refuses_the_start(plugin_env: dict[str, str], variable: str) -> None:
    # No initialize reply at all: the daemon sees a refused start, not a crash loop.
    run = run_plugin(
        input=json.dumps(INITIALIZE).encode() + b"\n", env={**plugin_env, variable: ""}
    )
    assert run.returncode == 1
    assert run.stdout == b""
    assert variable.encode() in run.stderr
    assert len(run.stderr.decode().strip().splitlines()) == 1, run.stderr
