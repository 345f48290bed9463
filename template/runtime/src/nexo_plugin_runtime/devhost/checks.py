"""What the daemon would drop or refuse of what the plugin writes, said as the dev host
shows it. The daemon's rules (nexo 0.1.5, subprocess.rs and the broker's Event type): one
serde_json object per line; broker.publish only after the initialize reply, on
plugin.inbound.<kind>[.more] for a declared kind, its event with a UUID id and an RFC 3339
timestamp; requests only for the methods it serves.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

HOST_METHODS = {"memory.recall", "llm.complete"}
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)


def event_problems(event: Any) -> list[str]:
    """Why the daemon could not read `event` as its broker Event."""
    if not isinstance(event, dict):
        return ["params.event is not an object"]
    problems = [f"the event has no {key}" for key in ("id", "timestamp") if key not in event]
    if "id" in event:
        try:
            uuid.UUID(str(event["id"]))
        except ValueError:
            problems.append(f"the event's id {event['id']!r} is not a UUID")
    stamp = event.get("timestamp")
    if stamp is not None:
        valid = isinstance(stamp, str) and RFC3339.match(stamp)
        if valid:
            try:
                datetime.fromisoformat(re.sub("[Zz]$", "+00:00", stamp))
            except ValueError:
                valid = None
        if not valid:
            problems.append(f"the event's timestamp {stamp!r} is not RFC 3339")
    session = event.get("session_id")
    if session is not None:
        try:
            uuid.UUID(str(session))
        except ValueError:
            problems.append(f"the event's session_id {session!r} is neither a UUID nor null")
    return problems


def topic_problem(topic: Any, kinds: list[str]) -> str | None:
    """Why the daemon would not forward a publish on `topic`, if it would not."""
    if isinstance(topic, str):
        for kind in kinds:
            prefix = f"plugin.inbound.{kind}"
            if topic == prefix or topic.startswith(prefix + "."):
                return None
    allowed = ", ".join(f"plugin.inbound.{kind}[.more]" for kind in kinds) or "none: no channel"
    return f"topic {topic!r} is outside the plugin's channels ({allowed})"


def frame_problems(frame: dict[str, Any], *, kinds: list[str], initialized: bool) -> list[str]:
    """What the daemon would do wrong with a frame read from the plugin, or []."""
    method = frame.get("method")
    if method is None:
        return []  # a response: the session pairs it with its request
    if "id" in frame:
        if method not in HOST_METHODS:
            return [f"the daemon serves no {method!r}: it answers -32601"]
        return []
    if method != "broker.publish":
        return [f"the daemon ignores a {method!r} notification"]
    params = frame.get("params")
    if not isinstance(params, dict):
        return ["broker.publish without params {topic, event}: dropped"]
    problems = []
    if not initialized:
        problems.append("published before the initialize reply: the daemon drops it")
    topic = topic_problem(params.get("topic"), kinds)
    if topic:
        problems.append(f"{topic}: the daemon drops it")
    unreadable = event_problems(params.get("event"))
    if unreadable:
        problems.append(f"{'; '.join(unreadable)}: the daemon drops it")
    return problems
