"""`uv run nexo-dev` in generated plugins: every combination's nexo-dev.toml starts its
plugin as it is generated, each set-up plugin does its job under the dev host with no
frame flagged, a recorded session replays as one line of the plugin's own pytest, and the
release tarball leaves the dev host out. The dev host's own behaviour is tested once, in
tests/runtime (test_devhost*.py, test_inspector.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from environments import run_in
from nexo_plugin_runtime.devhost import settings
from projects import Project

# What each capability shows under nexo-dev after the events file below, as generated.
SHOWN = {
    "echo": '<- broker.publish plugin.inbound.{kind} {{"echoed_from": "plugin.outbound.{kind}"',
    "webhook": "webhook listening on http://127.0.0.1:",
    "poller": '<- broker.publish plugin.inbound.{kind} {{"id": "1", "title": "First item"}}',
    "outbound": '~> POST /deliveries -> 200 {{"text": "hello"}}',
    "tools": '"text": "On Tuesday, from what the agent remembers."',
}


def test_nexo_dev_toml_gives_every_setting_the_plugin_requires(rendered: Project) -> None:
    dev = settings.load(rendered.path / settings.FILE_NAME)
    required = rendered.manifest["plugin"].get("requires", {}).get("env", [])
    assert set(required) <= set(dev.env), f"nexo-dev.toml lacks {set(required) - set(dev.env)}"
    assert ("tools" in rendered.capabilities) == bool(dev.memory and dev.llm)
    paths = {route.path for route in dev.http}
    assert ("poller" in rendered.capabilities) == ("/feed" in paths)
    assert ("outbound" in rendered.capabilities) == ("/deliveries" in paths)


def events_for(project: Project) -> str:
    """An events file for what the plugin can take: an event, a streamed tool call."""
    lines: list[dict[str, Any]] = []
    if project.kind is not None:
        lines.append({"payload": {"text": "hello"}})
    if "poller" in project.capabilities:
        lines.append({"sleep": 3})  # its first poll, once the handshake is done, under load
    if "tools" in project.capabilities:
        question = {"question": "When do we deploy?", "stream": True}
        lines.append({"tool": f"{project.plugin_id}_ask", "args": question})
    lines.append({"shutdown": True})
    return "".join(json.dumps(line) + "\n" for line in lines)


def nexo_dev(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project.path / ".venv" / "bin" / "nexo-dev"), "--no-watch", *args],
        cwd=project.path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **project.tools_env, **(env or {})},
    )


def test_the_generated_plugin_does_its_job_under_nexo_dev(project: Project, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(events_for(project))
    # State of its own: a poller publishes only the items it has not handled before.
    state = {f"{project.env_prefix}_STATE_DIR": str(tmp_path / "state")}
    run = nexo_dev(project, "--events", str(events), env=state)
    assert run.returncode == 0, run.stdout + run.stderr
    shown = run.stdout
    assert " !! " not in shown, shown
    assert "the plugin exited with 0" in shown, shown
    for capability in project.capabilities or ["echo"]:
        assert SHOWN[capability].format(kind=project.kind) in shown, shown


@pytest.mark.cases("echo")
def test_a_recorded_session_is_one_line_of_the_plugin_s_pytest(
    project: Project, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"payload": {"text": "recorded"}}\n{"shutdown": true}\n')
    recording = "tests/recordings/hello.jsonl"
    recorded = nexo_dev(project, "--events", str(events), "--record", recording)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    test = project.path / "tests" / "test_recorded.py"
    test.write_text(
        "from nexo_plugin_runtime.devhost import replay_recording\n\n\n"
        "def test_hello() -> None:\n"
        f'    replay_recording("{recording}")\n'
    )
    handlers = project.package / "handlers.py"
    original = handlers.read_text()
    try:
        passed = run_in(project.path, "pytest", "tests/test_recorded.py", "-p", "no:cacheprovider")
        assert passed.returncode == 0, passed.stdout + passed.stderr
        handlers.write_text(
            original.replace('"echoed_from": topic', '"echoed_from": topic.upper()')
        )
        failed = run_in(project.path, "pytest", "tests/test_recorded.py", "-p", "no:cacheprovider")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "no longer does what hello.jsonl recorded" in failed.stdout
        assert (
            '+{"jsonrpc": "2.0", "method": "broker.publish", "params": {"event": {"id": "<uuid>", "payload": {"echoed_from": "PLUGIN.OUTBOUND.'
            in failed.stdout
        )
    finally:
        handlers.write_text(original)
        test.unlink()
        (project.path / recording).unlink()
