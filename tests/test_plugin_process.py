"""Each rendered plugin, run as a real subprocess and driven frame by frame by a scripted host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Project
from render import find_python
from scripted_host import INIT, ScriptedHost


def start(project: Project, tmp_path: Path, **kwargs) -> ScriptedHost:
    """The plugin, spawned like the daemon does: by its entrypoint, from another directory."""
    return ScriptedHost([str(project.launcher)], cwd=tmp_path, **kwargs)


SDK_REPLY = """
import sys
from nexo_plugin_sdk import read_manifest, wire
manifest = read_manifest(open(sys.argv[1]).read())
reply = wire.build_response(1, {"manifest": manifest, "server_version": sys.argv[2]})
sys.stdout.write(wire.serialize_frame(reply))
"""


def echo_event(kind: str) -> dict:
    topic = f"plugin.outbound.{kind}.room_1"
    event = {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-11-21T10:00:00.000Z",
        "topic": topic,
        "source": "agent_x",
        "session_id": str(uuid.uuid4()),
        "payload": {"text": "ping", "n": 1},
    }
    return {"jsonrpc": "2.0", "method": "broker.event", "params": {"topic": topic, "event": event}}


def test_initialize_returns_the_manifest_and_server_version(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        reply = host.call(INIT)
        result = reply["result"]
        assert result["manifest"] == project.manifest
        assert result["manifest"]["plugin"]["id"] == project.plugin_id
        assert result["server_version"] == f"{project.plugin_id}-0.1.0"
        assert ("tools" in result) == project.answers["with_example_tool"]


def test_broker_event_is_echoed_as_a_daemon_valid_publish(project: Project, tmp_path) -> None:
    kind = project.answers["channel_kind"]
    sent = echo_event(kind)
    with start(project, tmp_path) as host:
        host.call(INIT)
        host.send(sent)
        publish = host.frame()
    assert publish["method"] == "broker.publish" and "id" not in publish
    params = publish["params"]
    assert params["topic"] == f"plugin.inbound.{kind}.room_1"
    event = params["event"]
    # The fields, and only the fields, of the daemon's broker Event.
    assert set(event) == {"id", "timestamp", "topic", "source", "session_id", "payload"}
    assert uuid.UUID(event["id"]).version == 4
    stamped = datetime.fromisoformat(event["timestamp"])
    assert stamped.utcoffset() is not None and stamped.utcoffset().total_seconds() == 0
    assert event["topic"] == params["topic"]
    assert event["source"] == project.plugin_id
    assert event["session_id"] == sent["params"]["event"]["session_id"]
    assert event["payload"]["echoed_payload"] == {"text": "ping", "n": 1}


def test_tool_invoke(project: Project, tmp_path) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tool.invoke",
        "params": {
            "plugin_id": project.plugin_id,
            "tool_name": f"{project.plugin_id}_echo",
            "args": {"text": "hello"},
            "agent_id": "agent_x",
        },
    }
    with start(project, tmp_path) as host:
        tools = host.call(INIT)["result"].get("tools", [])
        reply = host.call(call)
        if not project.answers["with_example_tool"]:
            assert tools == []
            assert reply["error"]["code"] == -32601
            return
        assert [tool["name"] for tool in tools] == [f"{project.plugin_id}_echo"]
        assert reply["result"] == {
            "content": [{"type": "text", "text": "hello"}],
            "is_error": False,
        }
        call["params"]["args"] = ["not", "an", "object"]
        assert host.call({**call, "id": 3})["error"]["code"] == -33402


def test_initialize_reply_is_byte_for_byte_the_sdk_reply(project: Project, tmp_path) -> None:
    # Plugins without tools answer initialize before loading the SDK: with its exact bytes.
    sdk_reply = subprocess.run(
        [
            str(project.path / ".venv/bin/python"),
            "-c",
            SDK_REPLY,
            str(project.path / "nexo-plugin.toml"),
            f"{project.plugin_id}-0.1.0",
        ],
        capture_output=True,
        check=True,
    ).stdout
    plugin = subprocess.Popen(
        [str(project.launcher)],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    plugin.stdin.write(json.dumps(INIT).encode() + b"\n")
    plugin.stdin.flush()
    reply = plugin.stdout.readline()
    plugin.stdin.close()
    assert plugin.wait(timeout=10) == 0
    if not project.answers["with_example_tool"]:
        assert reply == sdk_reply
    else:  # the SDK answers, adding its tool list
        assert (
            json.loads(reply)["result"]["manifest"] == json.loads(sdk_reply)["result"]["manifest"]
        )


@pytest.mark.parametrize(
    "first",
    [b"not json at all", b'{"jsonrpc": "2.0", "method": "no.such.notification"}', b"[1]", b""],
    ids=["garbage", "notification", "array", "empty-line"],
)
def test_a_first_frame_other_than_initialize_goes_to_the_sdk(
    project: Project, tmp_path, first: bytes
) -> None:
    with start(project, tmp_path) as host:
        host.write(first + b"\n")
        assert host.call(INIT)["result"]["manifest"]["plugin"]["id"] == project.plugin_id
        assert host.call({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})["result"] == {
            "ok": True
        }
        assert host.exit_code() == 0


def test_shutdown_as_the_first_frame(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        assert host.call({"jsonrpc": "2.0", "id": 5, "method": "shutdown"})["result"] == {
            "ok": True
        }
        assert host.exit_code() == 0


@pytest.mark.parametrize("how", ["close-stdin", "sigterm"])
def test_stops_cleanly_before_initialize(project: Project, tmp_path, how: str) -> None:
    with start(project, tmp_path) as host:
        time.sleep(1.0)  # well past start-up, while it waits for the first frame
        if how == "sigterm":
            host.proc.send_signal(signal.SIGTERM)
        else:
            host.proc.stdin.close()
        assert host.exit_code() == 0


def test_unknown_method_gets_32601(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        reply = host.call({"jsonrpc": "2.0", "id": 7, "method": "no.such.method"})
        assert reply["error"]["code"] == -32601


def test_bad_lines_are_survived(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        host.write(b"x" * (1 << 20) + b"y" * 100 + b"\n")  # over the 1 MiB frame cap
        host.write(b"{not json\n")
        host.write(b"[1, 2, 3]\n")
        host.write(b"\n")
        reply = host.call({**INIT, "id": 8})
        assert reply["result"]["manifest"]["plugin"]["id"] == project.plugin_id
        assert host.call({"jsonrpc": "2.0", "id": 9, "method": "shutdown"})["result"] == {
            "ok": True
        }
        assert host.exit_code() == 0
    stderr = host.stderr.decode()
    assert "exceeds max_frame_bytes" in stderr or "oversized" in stderr
    assert "malformed jsonrpc line" in stderr
    assert "must be an object" in stderr


def test_shutdown_replies_ok_and_exits_0_within_1s(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        reply = host.call({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        replied = time.monotonic()
        assert reply["result"] == {"ok": True}
        assert host.exit_code(timeout=1.0) == 0
        assert time.monotonic() - replied < 1.0


def test_closing_stdin_exits_0(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        host.proc.stdin.close()
        assert host.exit_code() == 0


def test_sigterm_exits_0(project: Project, tmp_path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        host.proc.send_signal(signal.SIGTERM)
        assert host.exit_code() == 0


NOISY_HANDLERS = """
import json
import logging
import os
import subprocess
import sys

print("import-time print")
logging.getLogger("noisy").addHandler(logging.StreamHandler(sys.stdout))


async def on_event(plugin, topic, event):
    print("a stray print")
    print(json.dumps({"jsonrpc": "2.0", "method": "broker.publish", "params": {}}))
    sys.stdout.write("no newline at the end")
    sys.__stdout__.write("via sys.__stdout__\\n")
    sys.__stdout__.flush()
    os.write(1, b"straight to descriptor 1\\n")
    subprocess.run(["echo", "from a child process"], check=True)
    logging.getLogger("noisy").error("a log record")
    await plugin.publish(plugin.inbound_topic(topic), {"ok": True})
"""


def test_nothing_but_frames_reaches_stdout(project: Project, tmp_path) -> None:
    noisy = project.copy_without_venv(tmp_path / "noisy")
    (noisy / ".venv").symlink_to(project.path / ".venv")
    (noisy / project.package.relative_to(project.path) / "handlers.py").write_text(NOISY_HANDLERS)
    with ScriptedHost([str(noisy / "bin" / project.plugin_id)], cwd=tmp_path) as host:
        host.call(INIT)
        host.send(echo_event(project.answers["channel_kind"]))
        publish = host.frame()
        assert publish["params"]["event"]["payload"] == {"ok": True}
        host.proc.stdin.close()
        assert host.exit_code() == 0  # and no other byte on stdout
    stderr = host.stderr.decode()
    for line in (
        "import-time print",
        "a stray print",
        '"method": "broker.publish", "params": {}',
        "no newline at the end",
        "via sys.__stdout__",
        "straight to descriptor 1",
        "from a child process",
        "a log record",
    ):
        assert line in stderr


def test_print_manifest_is_verbatim_with_stdin_left_open(project: Project, tmp_path) -> None:
    probe = subprocess.Popen(
        [str(project.launcher), "--print-manifest"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = probe.communicate(timeout=5)
    assert probe.returncode == 0, stderr
    assert stdout == (project.path / "nexo-plugin.toml").read_bytes()
    assert stderr == b""


def test_python_m_package_answers_the_probe_too(project: Project, tmp_path) -> None:
    run = subprocess.run(
        [str(project.path / ".venv/bin/python"), "-m", project.plugin_id, "--print-manifest"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        capture_output=True,
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == (project.path / "nexo-plugin.toml").read_bytes()


def test_print_manifest_needs_no_dependency(project: Project, tmp_path) -> None:
    # A python3 on PATH with nothing installed, and no .venv in the project.
    bare = tmp_path / "bare"
    python = find_python(project.answers["python_min"])
    subprocess.run([python, "-m", "venv", "--without-pip", str(bare)], check=True)
    fresh = project.copy_without_venv(tmp_path / "fresh")
    env = {**os.environ, "PATH": f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    probe = subprocess.run(
        ["python3", "-c", "import nexo_plugin_sdk"], env=env, capture_output=True, cwd=tmp_path
    )
    assert probe.returncode != 0, "the bare interpreter should not have the SDK"
    run = subprocess.run(
        [str(fresh / "bin" / project.plugin_id), "--print-manifest"],
        env=env,
        capture_output=True,
        cwd=tmp_path,
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == (fresh / "nexo-plugin.toml").read_bytes()


def test_stdin_from_dev_null_fails_fast_with_a_hint(project: Project, tmp_path) -> None:
    run = subprocess.run(
        [str(project.launcher)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
    )
    assert run.returncode == 2
    assert run.stdout == b""
    assert b"stdin is not a pipe or socket" in run.stderr
    assert b"nexo plugin run ." in run.stderr


def test_launcher_refuses_a_python_older_than_the_minimum(project: Project, tmp_path) -> None:
    minimum = tuple(int(part) for part in project.answers["python_min"].split("."))
    older = find_python(f"{minimum[0]}.{minimum[1] - 1}")
    if older is None:
        pytest.skip(f"no Python older than {project.answers['python_min']} here")
    fresh = project.copy_without_venv(tmp_path / "fresh")
    env = {**os.environ, f"{project.plugin_id.upper()}_PYTHON": older}
    run = subprocess.run(
        [str(fresh / "bin" / project.plugin_id)],
        stdin=subprocess.PIPE,
        env=env,
        capture_output=True,
        cwd=tmp_path,
        timeout=10,
    )
    assert run.returncode == 1
    assert f"needs Python >= {project.answers['python_min']}".encode() in run.stderr
    assert run.stdout == b""
