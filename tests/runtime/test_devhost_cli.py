"""nexo-dev as an author runs it: at the prompt in a terminal, with an events file and a
recording, replaying it, from a packed tarball, and with bad options."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest
from checkouts import environment
from devhost_plugins import ASK, ask_plugin
from nexo_plugin_runtime.devhost import cli, installed
from terminal import Terminal


def test_typed_at_the_prompt_an_event_a_refused_tool_call_and_an_edit(tmp_path: Path) -> None:
    project = ask_plugin(tmp_path / "p")
    (project / "nexo-dev.toml").write_text('[[llm]]\nmatch = ""\nreply = "Fine."\n')
    command = [sys.executable, "-m", "nexo_plugin_runtime.devhost", "--project", str(project)]
    terminal = Terminal(command, environment(project), cwd=str(tmp_path))
    try:
        at = terminal.wait_for("nexo-dev> ")
        terminal.type("hello there")
        at = terminal.wait_for(
            '<- broker.publish plugin.inbound.proc {"echo": {"text": "hello there"}}', after=at
        )
        terminal.type('/tool proc_ask {"question": 7}')
        at = terminal.wait_for(
            "refused: not sent, the arguments do not fit proc_ask's input_schema: question: 7 is not of type 'string'",
            after=at,
        )
        terminal.type('/tool proc_ask {"question": "How are you?"}')
        at = terminal.wait_for('= {"content": [{"type": "text", "text": "Fine."}]', after=at)
        assert terminal.shown.count("-> tool.invoke") == 1
        handlers = project / "src" / "proc" / "handlers.py"
        handlers.write_text(ASK.replace('{"echo": event.payload}', '{"edited": event.payload}'))
        at = terminal.wait_for("src/proc/handlers.py changed: restarting the plugin", after=at)
        at = terminal.wait_for("<- result #", after=at)
        terminal.type("again")
        at = terminal.wait_for('{"edited": {"text": "again"}}', after=at)
        terminal.type("/quit")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()


def test_an_events_file_recorded_then_replayed_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ask_plugin(tmp_path / "p")
    for name in ("PYTHONPATH", "PROC_STATE_DIR"):
        monkeypatch.setenv(name, environment(project)[name])
    (project / "nexo-dev.toml").write_text('[[llm]]\nmatch = "deploy"\nreply = "Tuesday."\n')
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"payload": {"text": "one"}}\n'
        '{"tool": "proc_ask", "args": {"question": "deploy?", "stream": true}}\n'
        '{"tool": "proc_ask", "args": {"question": 1}}\n'
        '{"shutdown": true}\n'
    )
    record = tmp_path / "session.jsonl"
    assert (
        cli.main(
            [
                "--project",
                str(project),
                "--events",
                str(events),
                "--record",
                str(record),
                "--no-watch",
            ]
        )
        == 0
    )
    shown = capsys.readouterr().out
    assert '<- broker.publish plugin.inbound.proc {"echo": {"text": "one"}}' in shown
    assert "?> llm.complete.delta" in shown
    assert "refused: not sent" in shown
    assert "<- result #" in shown
    assert "plugin exited with 0" in shown
    assert "nexo-dev: 13 frames, 0 flagged" in shown  # the refused call sent nothing
    kinds = [json.loads(line).get("kind") for line in record.read_text().splitlines()[1:]]
    assert {"host", "plugin", "call", "answer"} <= set(kinds)

    assert cli.main(["--project", str(project), "--replay", str(record)]) == 0
    assert "the plugin does what" in capsys.readouterr().out
    handlers = project / "src" / "proc" / "handlers.py"
    handlers.write_text(ASK.replace("for chunk in stream])", "for chunk in stream]).upper()"))
    assert cli.main(["--project", str(project), "--replay", str(record)]) == 1
    differences = capsys.readouterr().out
    assert '"text": "TUESDAY."' in differences
    assert "no longer does what" in differences


def test_bad_options_and_files_are_all_said_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ask_plugin(tmp_path / "p")
    (project / "nexo-dev.toml").write_text('agent = 1\n[[llm]]\nmatch = "("\n')
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    argv = [
        "--project",
        str(project),
        "--events",
        str(events),
        "--llm-url",
        "http://127.0.0.1:9/v1",
        "--llm-key-env",
        "NO_SUCH_KEY_VARIABLE",
    ]
    assert cli.main(argv) == 2
    said = capsys.readouterr().err
    assert "agent: should be a string" in said
    assert "llm[0].match: not a regular expression" in said
    assert f"{events}:1: write one of" in said
    assert "--llm-key-env NO_SUCH_KEY_VARIABLE: the variable is not set" in said
    assert cli.main(["--project", str(tmp_path)]) == 2
    assert "no nexo-plugin.toml in" in capsys.readouterr().err


def packed(project: Path, dist: Path) -> Path:
    """A tarball laid out as the installer unpacks one: the manifest, the launcher and the
    plugin's code (here run by this interpreter)."""
    dist.mkdir()
    tarball = dist / "proc-0.3.0-noarch.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        launcher = (
            b'#!/bin/sh\nhere=$(dirname "$0")\nPYTHONPATH="$here/../src" exec "'
            + sys.executable.encode()
            + b'" -m proc.main "$@"\n'
        )
        info = tarfile.TarInfo("bin/proc")
        info.mode, info.size = 0o755, len(launcher)
        archive.addfile(info, io.BytesIO(launcher))
        archive.add(project / "nexo-plugin.toml", "nexo-plugin.toml")
        archive.add(project / "src", "src")
    return tarball


def test_the_installed_plugin_runs_from_its_tarball_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ask_plugin(tmp_path / "p")
    tarball = packed(project, tmp_path / "dist")
    with installed.unpacked(tarball) as folder:
        assert (folder / "bin" / "proc").stat().st_mode & 0o777 == 0o555
        assert (folder / "src" / "proc" / "handlers.py").stat().st_mode & 0o222 == 0
        assert (folder / "src").stat().st_mode & 0o222 == 0
    assert not folder.exists()
    assert installed.choose_tarball(tmp_path / "dist", "proc") == tarball
    with pytest.raises(
        ValueError,
        match=r"no proc-<version>-.*\.tar\.gz nor -noarch\.tar\.gz there \(tarballs: none\)",
    ):
        installed.choose_tarball(tmp_path, "proc")

    monkeypatch.setenv("PROC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    events = tmp_path / "events.jsonl"
    events.write_text('{"payload": {"text": "installed"}}\n{"shutdown": true}\n')
    argv = [
        "--project",
        str(project),
        "--installed",
        str(tmp_path / "dist"),
        "--events",
        str(events),
    ]
    assert cli.main(argv) == 0
    shown = capsys.readouterr().out
    assert "proc-0.3.0-noarch.tar.gz unpacked read-only in" in shown
    assert "/nexo-dev-installed-" in shown.split("started ", 1)[1].split("\n", 1)[0]
    assert '{"echo": {"text": "installed"}}' in shown
    assert os.environ.get("PYTHONPATH") is None
