"""Each rendered plugin, run from source as a real subprocess and driven frame by frame by the
independent scripted host: the protocol contract every shape keeps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from environments import find_python
from projects import Project
from scripted_host import INIT, ScriptedHost

# The initialize reply the SDK itself would write, with the plugin's tool list.
SDK_REPLY = """
import json, sys
from nexo_plugin_sdk import read_manifest, wire
result = {"manifest": read_manifest(open(sys.argv[1]).read()), "server_version": sys.argv[2]}
if json.loads(sys.argv[3]):
    result["tools"] = json.loads(sys.argv[3])
sys.stdout.write(wire.serialize_frame(wire.build_response(1, result)))
"""


def start(project: Project, cwd: Path, **env: str) -> ScriptedHost:
    """The plugin, spawned like the daemon does: by its entrypoint, from another directory,
    in an environment with the settings it needs."""
    environment = {**os.environ, **project.start_env(cwd), **env}
    return ScriptedHost([str(project.launcher)], cwd=cwd, env=environment)


def shutdown(host: ScriptedHost, request_id: int = 99) -> None:
    assert host.call({"jsonrpc": "2.0", "id": request_id, "method": "shutdown"})["result"] == {
        "ok": True
    }
    assert host.exit_code() == 0


def test_initialize_returns_the_manifest_server_version_and_tools(
    project: Project, tmp_path: Path
) -> None:
    with start(project, tmp_path) as host:
        result = host.call(INIT)["result"]
        shutdown(host)
    assert result["manifest"] == project.manifest
    assert result["server_version"] == f"{project.plugin_id}-0.1.0"
    assert [tool["name"] for tool in result.get("tools", [])] == project.tools


def test_initialize_reply_is_byte_for_byte_the_sdk_reply(project: Project, tmp_path: Path) -> None:
    with start(project, tmp_path) as host:
        tools = host.call(INIT)["result"].get("tools", [])
        reply = host.last_line
        shutdown(host)
    expected = subprocess.run(
        [
            str(project.path / ".venv/bin/python"),
            "-c",
            SDK_REPLY,
            str(project.path / "nexo-plugin.toml"),
            f"{project.plugin_id}-0.1.0",
            json.dumps(tools),
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert reply + b"\n" == expected


def test_unknown_method_gets_32601(project: Project, tmp_path: Path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        reply = host.call({"jsonrpc": "2.0", "id": 7, "method": "no.such.method"})
        assert reply["error"]["code"] == -32601
        shutdown(host)


def test_bad_lines_are_survived(project: Project, tmp_path: Path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        host.write(b"x" * (1 << 20) + b"y" * 100 + b"\n")  # over the 1 MiB frame limit
        host.write(b"{not json\n")
        host.write(b"[1, 2, 3]\n")
        host.write(b"\n")
        reply = host.call({**INIT, "id": 8})
        assert reply["result"]["manifest"]["plugin"]["id"] == project.plugin_id
        shutdown(host)
    stderr = host.stderr_text()
    assert "longer than 1048576 bytes skipped" in stderr
    assert "malformed frame skipped" in stderr
    assert "must be an object" in stderr


def test_shutdown_replies_ok_and_exits_0_within_1s(project: Project, tmp_path: Path) -> None:
    with start(project, tmp_path) as host:
        host.call(INIT)
        reply = host.call({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        replied = time.monotonic()
        assert reply["result"] == {"ok": True}
        assert host.exit_code(timeout=1.0) == 0
        assert time.monotonic() - replied < 1.0


@pytest.mark.parametrize("when", ["before-initialize", "after-initialize"])
@pytest.mark.parametrize("how", ["close-stdin", "sigterm", "sigint"])
def test_stops_cleanly(project: Project, tmp_path: Path, when: str, how: str) -> None:
    with start(project, tmp_path) as host:
        if when == "after-initialize":
            host.call(INIT)
        else:
            time.sleep(1.0)  # well past start-up, while it waits for the first frame
        if how == "close-stdin":
            host.proc.stdin.close()
        else:
            host.proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert host.exit_code() == 0
    assert "Traceback" not in host.stderr_text()


def test_a_missing_setting_refuses_the_start(project: Project, tmp_path: Path) -> None:
    required = project.manifest["plugin"]["requires"].get("env", [])
    if not required:
        pytest.skip(f"the {project.shape} shape has no required setting")
    with start(project, tmp_path, **{name: "" for name in required}) as host:
        host.write(json.dumps(INIT).encode() + b"\n")
        assert host.exit_code() == 1  # and no byte on stdout: no initialize reply
    stderr = host.stderr.decode()
    assert all(f"{name} is empty" in stderr for name in required), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_print_manifest_is_verbatim_with_stdin_left_open(project: Project, tmp_path: Path) -> None:
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


def bare_copy(project: Project, dst: Path) -> Path:
    """The project's files as they are before any dependency is installed."""
    ignored = shutil.ignore_patterns(".venv", "__pycache__", ".git", "*_cache")
    shutil.copytree(project.path, dst, ignore=ignored)
    return dst


def test_print_manifest_needs_no_dependency(project: Project, tmp_path: Path) -> None:
    # A python3 on PATH with nothing installed, and no .venv in the project.
    bare = tmp_path / "bare"
    subprocess.run([project.python, "-m", "venv", "--without-pip", str(bare)], check=True)
    fresh = bare_copy(project, tmp_path / "fresh")
    env = {**os.environ, "PATH": f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    probe = subprocess.run(
        ["python3", "-c", "import nexo_plugin_sdk"], env=env, capture_output=True, cwd=tmp_path
    )
    assert probe.returncode != 0, "the bare interpreter should not have the SDK"
    launcher = fresh / "bin" / project.plugin_id
    run = subprocess.run(
        [str(launcher), "--print-manifest"], env=env, capture_output=True, cwd=tmp_path, timeout=10
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == (fresh / "nexo-plugin.toml").read_bytes()
    # Without the SDK, starting says what to do instead of a traceback.
    started = subprocess.run(
        [str(launcher)], env=env, stdin=subprocess.PIPE, capture_output=True, cwd=tmp_path
    )
    assert started.returncode == 1
    assert b"install the dependencies (`uv sync`)" in started.stderr
    assert b"Traceback" not in started.stderr


def test_a_symlinked_launcher_works_from_anywhere(project: Project, tmp_path: Path) -> None:
    link = tmp_path / "on-path" / project.plugin_id
    link.parent.mkdir()
    link.symlink_to(project.launcher)
    run = subprocess.run([str(link), "--print-manifest"], capture_output=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == (project.path / "nexo-plugin.toml").read_bytes()
    environment = {**os.environ, **project.start_env(tmp_path)}
    with ScriptedHost([str(link)], cwd=tmp_path, env=environment) as host:
        assert host.call(INIT)["result"]["manifest"]["plugin"]["id"] == project.plugin_id
        shutdown(host)


def test_stdin_from_dev_null_fails_fast_with_a_hint(project: Project, tmp_path: Path) -> None:
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


def test_launcher_refuses_a_python_older_than_the_minimum(project: Project, tmp_path: Path) -> None:
    minimum = tuple(int(part) for part in project.answers["python_min"].split("."))
    older = find_python(f"{minimum[0]}.{minimum[1] - 1}")
    if older is None:
        pytest.skip(f"no Python older than {project.answers['python_min']} here")
    fresh = bare_copy(project, tmp_path / "fresh")
    env = {**os.environ, f"{project.env_prefix}_PYTHON": older}
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


def test_check_finds_handlers_and_manifest_in_agreement(project: Project, tmp_path: Path) -> None:
    run = subprocess.run([str(project.launcher), "--check"], capture_output=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert b"agree (tools: " in run.stderr
