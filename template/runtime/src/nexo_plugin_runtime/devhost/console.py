"""The dev host in a terminal: the session's log as it happens, a prompt to act on the
plugin, and `--events` files played as if typed.

At the prompt:
    hello there                 a broker event whose payload is {"text": "hello there"}
    {"text": "hi", "n": 1}      a broker event with that payload
    /event TOPIC PAYLOAD        on another topic of the plugin's channels
    /tool NAME {"arg": 1}       call a tool (the arguments are checked first)
    /tools                      the plugin's tools and their arguments
    /restart  /shutdown  /quit  /help
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .session import DevSession, Entry, UsageError

ARROWS = {
    "host": "->",
    "plugin": "<-",
    "call": "<?",
    "answer": "?>",
    "stderr": " |",
    "flag": "!!",
    "note": "..",
    "restart": "..",
    "http": "~>",
}
HELP = (__doc__ or "").split("At the prompt:\n", 1)[1].rstrip()


def line_of(entry: Entry) -> str:
    """An entry as the terminal shows it."""
    timing = f"  ({entry.latency * 1000:.0f} ms)" if entry.latency is not None else ""
    return f"{entry.at:8.3f}s {ARROWS.get(entry.kind, '  ')} {entry.text}{timing}"


class Terminal:
    """Prints each entry of the session as it is logged."""

    def __init__(self, session: DevSession, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()
        session.listeners.append(self.show)

    def show(self, entry: Entry) -> None:
        self.say(line_of(entry))

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


@dataclass(frozen=True)
class Action:
    """One thing to do to the plugin, typed or read from an events file."""

    kind: str  # "event", "tool", "sleep", "shutdown", "restart", "quit", "help", "tools"
    payload: Any = None
    topic: str | None = None
    name: str = ""
    seconds: float = 0.0


def parse_command(text: str) -> Action:
    """What a line typed at the prompt asks, or UsageError saying how to write it."""
    text = text.strip()
    if not text.startswith("/"):
        return Action("event", _payload(text))
    command, _, rest = text.partition(" ")
    rest = rest.strip()
    if command in ("/restart", "/shutdown", "/quit", "/help", "/tools"):
        return Action(command[1:])
    if command == "/event":
        topic, _, payload = rest.partition(" ")
        if not topic:
            raise UsageError(
                'write /event TOPIC PAYLOAD, e.g. /event plugin.outbound.x {"text": "hi"}'
            )
        return Action("event", _payload(payload), topic=topic)
    if command == "/tool":
        name, _, args = rest.partition(" ")
        if not name:
            raise UsageError('write /tool NAME {"argument": "value"} (/tools lists them)')
        try:
            arguments = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as error:
            raise UsageError(
                f"the arguments are not JSON ({error}): write them as an object"
            ) from None
        return Action("tool", arguments, name=name)
    raise UsageError(f"no command {command}; the commands:\n{HELP}")


def _payload(text: str) -> Any:
    """JSON as typed, or the text as {"text": ...}."""
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"that looks like JSON but is not ({error})") from None
    return {"text": text}


def read_events(path: Path) -> list[Action]:
    """An events file: one JSON object per line, {"payload": ..., "topic": ...},
    {"tool": NAME, "args": {...}}, {"sleep": SECONDS} or {"shutdown": true}. Every bad line
    is reported at once."""
    actions, problems = [], []
    shapes = (
        '{"payload": ...}, {"tool": "NAME", "args": {...}}, {"sleep": 1.5} or {"shutdown": true}'
    )
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path}:{number}: not JSON ({error})")
            continue
        keys = set(document) if isinstance(document, dict) else set()
        if isinstance(document, dict) and "payload" in document and keys <= {"payload", "topic"}:
            actions.append(Action("event", document["payload"], topic=document.get("topic")))
        elif (
            isinstance(document, dict)
            and isinstance(document.get("tool"), str)
            and keys <= {"tool", "args"}
        ):
            actions.append(Action("tool", document.get("args", {}), name=document["tool"]))
        elif keys == {"sleep"} and isinstance(document["sleep"], (int, float)):
            actions.append(Action("sleep", seconds=float(document["sleep"])))
        elif document == {"shutdown": True}:
            actions.append(Action("shutdown"))
        else:
            problems.append(f"{path}:{number}: write one of {shapes}, not {line.strip()[:80]}")
    if problems:
        raise UsageError(f"{path} has {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return actions


def perform(session: DevSession, action: Action, say: Callable[[str], None]) -> bool:
    """Do `action`; False once the session should end."""
    if action.kind == "event":
        session.publish(action.payload, action.topic)
    elif action.kind == "tool":
        reply = session.invoke_tool(action.name, action.payload)
        if reply is not None and "result" in reply:
            say(f"          = {json.dumps(reply['result'], ensure_ascii=False)}")
    elif action.kind == "tools":
        for tool in session.tools:
            schema = json.dumps(tool.get("input_schema"), ensure_ascii=False)
            say(f"  {tool.get('name')}: {tool.get('description', '')}\n    arguments: {schema}")
        if not session.tools:
            say("  the plugin has no tools")
    elif action.kind == "sleep":
        time.sleep(action.seconds)
    elif action.kind == "restart":
        session.restart("asked at the prompt")
    elif action.kind == "help":
        say(HELP)
    elif action.kind == "shutdown":
        session.shutdown()
        return False
    elif action.kind == "quit":
        return False
    return True


def play(session: DevSession, actions: list[Action], say: Callable[[str], None]) -> bool:
    """Each action in turn, waiting for the plugin to settle after each; False when one
    ended the session."""
    for action in actions:
        try:
            if not perform(session, action, say):
                return False
        except UsageError as error:
            say(f"  refused: {error}")
        session.wait_quiet()
    return True


def prompt(session: DevSession, say: Callable[[str], None], source: TextIO = sys.stdin) -> None:
    """Read commands until /quit, /shutdown or the end of input."""
    say(
        "nexo-dev: type an event's text or JSON, /help for the commands "
        f"({', '.join(session.event_topics()) or 'no channel'})"
    )
    while True:
        if source.isatty():
            sys.stdout.write("nexo-dev> ")
            sys.stdout.flush()
        line = source.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            if not perform(session, parse_command(line), say):
                return
        except UsageError as error:
            say(f"  refused: {error}")
            continue
        session.wait_quiet(quiet=0.2, timeout=2.0)  # the replies, before the next prompt
