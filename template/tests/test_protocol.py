"""The nexo plugin contract, checked against the real plugin process: a handful of fast
checks that this plugin's handlers.py and nexo-plugin.toml work with the runtime (which the
template tests in depth). Follows the template; your own tests are the other files here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nexo_plugin_runtime.testing import (
    NEXO_VERSION,
    PluginHost,
    read_manifest,
    run_plugin,
    strict_json,
)
from nexo_plugin_sdk import read_manifest as sdk_read_manifest
from nexo_plugin_sdk import wire

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"nexo_version": NEXO_VERSION},
}


def test_print_manifest_prints_the_manifest_verbatim(plugin_project: Path) -> None:
    # stdin stays an open, empty pipe: the probe must answer without reading it.
    run = run_plugin(plugin_project, "--print-manifest", input=None)
    assert run.returncode == 0, run.stderr
    assert run.stdout == (plugin_project / "nexo-plugin.toml").read_bytes()


def test_python_m_main_answers_the_probe_too(plugin_project: Path) -> None:
    plugin_id = read_manifest(plugin_project)["plugin"]["id"]
    run = subprocess.run(
        [sys.executable, "-m", f"{plugin_id}.main", "--print-manifest"],
        capture_output=True,
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == (plugin_project / "nexo-plugin.toml").read_bytes()


def test_check_finds_handlers_manifest_and_runtime_in_agreement(plugin_project: Path) -> None:
    run = run_plugin(plugin_project, "--check")
    assert run.returncode == 0, run.stderr
    assert b"agree" in run.stderr


def test_initialize_reply_is_what_the_sdk_would_send(
    plugin_project: Path, plugin_env: dict[str, str]
) -> None:
    run = run_plugin(plugin_project, input=json.dumps(INITIALIZE).encode() + b"\n", env=plugin_env)
    assert run.returncode == 0, run.stderr
    reply = run.stdout.splitlines(keepends=True)[0]
    manifest = sdk_read_manifest((plugin_project / "nexo-plugin.toml").read_text(encoding="utf-8"))
    plugin = manifest["plugin"]
    result = {"manifest": manifest, "server_version": f"{plugin['id']}-{plugin['version']}"}
    if tools := strict_json(reply)["result"].get("tools"):
        assert sorted(tool["name"] for tool in tools) == sorted(plugin["extends"]["tools"])
        result["tools"] = tools
    assert reply == wire.serialize_frame(wire.build_response(1, result)).encode()


def test_hostile_frames_are_survived_and_the_next_is_served(ready: PluginHost) -> None:
    for line in [b"not json", b'{"jsonrpc": "2.0", "id": NaN, "method": "x"}', b"[" * 100_000]:
        ready.send_line(line)
    # Every line the plugin writes is checked by the host; the request after is answered.
    assert ready.request("no.such.method", {})["error"]["code"] == -32601


def test_shutdown_replies_ok_then_exits(ready: PluginHost) -> None:
    # The daemon kills the plugin 1 s after the reply; the runtime's own tests check that
    # its stop fits, however long the handlers run. Here: this plugin stops by itself.
    assert ready.request("shutdown")["result"] == {"ok": True}
    assert ready.wait(timeout=5) == 0


def test_missing_settings_refuse_the_start_all_named_on_one_line(
    plugin_project: Path, plugin_env: dict[str, str]
) -> None:
    plugin_id = read_manifest(plugin_project)["plugin"]["id"]
    required = read_manifest(plugin_project)["plugin"].get("requires", {}).get("env", [])
    own = [name for name in required if name.startswith(f"{plugin_id.upper()}_")]
    env = {**plugin_env, **dict.fromkeys(own, "")}
    run = run_plugin(plugin_project, input=json.dumps(INITIALIZE).encode() + b"\n", env=env)
    if not own:
        assert run.returncode == 0, run.stderr  # nothing is required: it starts
        return
    # No initialize reply at all: the daemon sees a refused start, not a crash loop.
    assert (run.returncode, run.stdout) == (1, b"")
    (line,) = run.stderr.decode().strip().splitlines()
    assert all(name in line for name in own), line
