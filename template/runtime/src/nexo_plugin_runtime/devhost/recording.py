"""Record a dev session, and replay it as a test.

A recording is JSON Lines: a header, then every frame that crossed the pipes, in order,
with its kind (session.py's Entry kinds: host, plugin, call, answer) and a restart marker
where the plugin restarted. Nothing of the environment is in it: no settings, no secret.

Replay starts the plugin again, sends the recorded inputs (initialize, events, tool calls,
shutdown) in turn, each once the plugin has written what it had written by then, answers
the plugin's requests with the recorded answers, and compares all it wrote with what it
wrote then: frame by frame, in any order (concurrent handlers may finish in either),
ignoring request ids, UUIDs and timestamps.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nexo_plugin_runtime.testing.host import find_project

from . import settings
from .answers import Chunk, Reply
from .checks import RFC3339
from .session import DevSession, Entry, open_session

FORMAT = 1
RECORDED_KINDS = {"host", "plugin", "call", "answer", "restart"}
OUTPUT_KINDS = ("plugin", "call")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class Recorder:
    """Writes the session's frames to `path` as they cross (a session listener)."""

    def __init__(self, path: Path, session: DevSession) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")
        version = session.manifest["plugin"].get("version")
        header = {"nexo_dev_recording": FORMAT, "plugin": session.plugin_id, "version": version}
        self._write(header)
        session.listeners.append(self.take)

    def _write(self, document: dict[str, Any]) -> None:
        self._file.write(json.dumps(document, ensure_ascii=False) + "\n")
        self._file.flush()

    def take(self, entry: Entry) -> None:
        if entry.kind in RECORDED_KINDS and not self._file.closed:
            document: dict[str, Any] = {"at": entry.at, "kind": entry.kind}
            if entry.kind == "restart":
                document["why"] = entry.text
            else:
                document["frame"] = entry.frame
            self._write(document)

    def close(self) -> None:
        self._file.close()


@dataclass
class Step:
    """One input of the recording and what the plugin wrote before the next."""

    frame: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Recording:
    plugin: str
    steps: list[Step]
    # The host's recorded answers to the plugin's requests, by method, in order: each the
    # chunks streamed, then the reply (None: left unanswered).
    answers: dict[str, deque[tuple[list[str], dict[str, Any] | None]]]


def read(path: Path) -> Recording:
    """The recording at `path`, or ValueError saying what is wrong with it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
        documents = [json.loads(line) for line in lines[1:] if line.strip()]
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a nexo-dev recording ({error})") from None
    if not isinstance(header, dict) or header.get("nexo_dev_recording") != FORMAT:
        raise ValueError(f"{path}: not a nexo-dev recording (record one with nexo-dev --record)")
    steps: list[Step] = []
    calls: dict[Any, tuple[str, list[str], list[dict[str, Any] | None]]] = {}
    order: list[tuple[str, list[str], list[dict[str, Any] | None]]] = []
    for document in documents:
        kind, frame = document.get("kind"), document.get("frame")
        if kind == "host":
            if frame.get("method") == "initialize":
                calls = {}  # a new process numbers its requests anew
            steps.append(Step(frame))
        elif kind in OUTPUT_KINDS and steps:
            steps[-1].outputs.append(frame)
            if kind == "call":
                slot: tuple[str, list[str], list[dict[str, Any] | None]] = (
                    frame["method"],
                    [],
                    [None],
                )
                calls[frame["id"]] = slot
                order.append(slot)
        elif kind == "answer":
            params = frame.get("params") or {}
            if frame.get("method") == "llm.complete.delta" and params.get("request_id") in calls:
                calls[params["request_id"]][1].append(params.get("chunk", ""))
            elif frame.get("id") in calls:
                calls[frame["id"]][2][0] = frame
    answers: dict[str, deque[tuple[list[str], dict[str, Any] | None]]] = defaultdict(deque)
    for method, chunks, reply in order:
        answers[method].append((chunks, reply[0]))
    return Recording(str(header.get("plugin")), steps, answers)


class RecordedAnswers:
    """The recording's answers, given again to the same requests."""

    def __init__(self, recording: Recording) -> None:
        self.answers = recording.answers

    def answer(self, method: str, params: Any, on_chunk: Chunk) -> Reply:
        if not self.answers.get(method):
            return Reply(error=(-32603, f"the recording has no more answers to {method}"))
        chunks, reply = self.answers[method].popleft()
        for chunk in chunks:
            on_chunk(chunk)
        if reply is None:
            return Reply(silent=True)
        if "error" in reply:
            return Reply(error=(reply["error"].get("code"), reply["error"].get("message")))
        return Reply(result=reply.get("result"))


def normalized(value: Any, top: bool = True) -> Any:
    """`value` with what differs from run to run replaced: request ids, UUIDs, timestamps."""
    if isinstance(value, dict):
        skip = {"id"} if top else set()
        return {key: normalized(item, False) for key, item in value.items() if key not in skip}
    if isinstance(value, list):
        return [normalized(item, False) for item in value]
    if isinstance(value, str):
        if _UUID.match(value):
            return "<uuid>"
        if RFC3339.match(value):
            return "<timestamp>"
    return value


def _texts(frames: list[dict[str, Any]]) -> list[str]:
    return sorted(
        json.dumps(normalized(frame), sort_keys=True, ensure_ascii=False) for frame in frames
    )


def replay(
    path: Path,
    project: Path,
    dev_settings: settings.DevSettings,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    settle: float = 0.2,
) -> list[str]:
    """Replay the recording against the plugin of `project`, with nexo-dev.toml's
    `dev_settings` (and `env` over them); the differences as a unified diff of the plugin's
    frames, recorded and now ([] when the plugin did what it did when recorded)."""
    recording = read(path)
    expected: list[dict[str, Any]] = []
    with open_session(project, RecordedAnswers(recording), dev_settings, env=env) as session:
        for step in recording.steps:
            method, params = str(step.frame.get("method")), step.frame.get("params")
            if method == "initialize":
                session.stop()
                session.start()
            elif "id" in step.frame:
                session.request(method, params, timeout=timeout)
            else:
                session.notify(method, params)
            expected.extend(step.outputs)
            # What the plugin wrote by then, before the next input: a frame written late
            # (a publish racing the next call) still counts, in whichever step it lands.
            _wait_for(session, len(expected), timeout)
        time.sleep(settle)  # for frames it should not write
        actual = [entry.frame for entry in session.since(0, *OUTPUT_KINDS)]
    return list(
        difflib.unified_diff(
            _texts(expected), _texts(actual), f"{path.name} (recorded)", "now", lineterm=""
        )
    )


def _wait_for(session: DevSession, count: int, timeout: float) -> None:
    """Until the plugin wrote `count` frames in all, stopped, or `timeout` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and session.running:
        if len(session.since(0, *OUTPUT_KINDS)) >= count:
            return
        time.sleep(0.01)


def replay_recording(
    recording: str | os.PathLike[str],
    *,
    project: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Replay a session recorded with `nexo-dev --record FILE` against the plugin (a
    relative path is from the project's root), with nexo-dev.toml's settings and `env` over
    them; fail showing each difference between what the plugin wrote then and now, ids and
    timestamps aside. One line of a test:

        def test_the_deploy_question() -> None:
            replay_recording("tests/recordings/deploy.jsonl")
    """
    root = project or find_project()
    path = Path(recording) if Path(recording).is_absolute() else root / recording
    dev_settings = settings.load(root / settings.FILE_NAME)
    differences = replay(path, root, dev_settings, env=env)
    if differences:
        raise AssertionError(
            f"the plugin no longer does what {path.name} recorded:\n" + "\n".join(differences)
        )
