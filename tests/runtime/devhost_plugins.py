"""Plugins and sessions for the dev host's tests: real plugin processes (checkouts.py)
under a DevSession of this process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from checkouts import environment, plugin_tree
from nexo_plugin_runtime.devhost import settings
from nexo_plugin_runtime.devhost.answers import HostAnswers, OpenAICompatible
from nexo_plugin_runtime.devhost.session import DevSession, Entry, open_session

# A channel that echoes, and a tool that answers from the agent's memory through the LLM,
# streamed when asked: what the dev host shows, answers, records and replays.
ASK = """
from dataclasses import dataclass, field
from typing import Any

from nexo_plugin_runtime import InboundEvent, Message, PluginContext, ToolCall, Tools, text_result

tools = Tools()


@dataclass(frozen=True)
class Question:
    question: str = field(metadata={"description": "what to answer"})
    stream: bool = False


@tools.tool("ask", "Answer from what the agent remembers.")
async def ask(plugin: PluginContext[None], call: ToolCall[Question]) -> dict[str, Any]:
    memories = await plugin.broker.memory_recall(agent_id=call.agent_id or "", query=call.args.question)
    request: dict[str, Any] = {
        "provider": "dev",
        "model": "asked-model",
        "messages": [Message("user", call.args.question)],
        "system_prompt": " | ".join(memory.content for memory in memories),
    }
    if not call.args.stream:
        return text_result((await plugin.broker.llm_complete(**request)).content or "")
    stream = plugin.broker.llm_complete_stream(**request)
    text = "".join([chunk async for chunk in stream])
    await stream.final_result()
    return text_result(text)


async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    reply = {"echo": event.payload}
    await plugin.publish(plugin.inbound_topic(topic), reply, session_id=event.session_id)
"""

FIXTURES = {
    "memory": [
        {"agent": "dev-agent", "content": "The deploy window is Tuesday."},
        {"agent": "someone-else", "content": "Not for the dev agent."},
    ],
    "llm": [
        {"match": "deploy", "reply": "On Tuesday."},
        {"match": "stream", "reply": "ignored", "chunks": ["Stre", "amed ", "reply."]},
        {"match": "broken", "error": {"code": -32603, "message": "no provider configured"}},
        {"match": "hang", "silent": True},
    ],
}


def ask_plugin(folder: Path) -> Path:
    return plugin_tree(folder, ASK, tools=("proc_ask",))


def checkout_env(project: Path) -> dict[str, str]:
    """What the plugin needs of the environment to run from the checkout, quickly timing out
    on a silent host."""
    full = environment(project, PROC_HOST_TIMEOUT="0.2")
    return {key: full[key] for key in ("PYTHONPATH", "PROC_STATE_DIR", "PROC_HOST_TIMEOUT")}


@contextlib.contextmanager
def dev_session(
    project: Path,
    document: dict[str, Any] | None = None,
    *,
    model: OpenAICompatible | None = None,
    start: bool = True,
) -> Iterator[DevSession]:
    """A DevSession of the plugin at `project`, with nexo-dev.toml settings `document`."""
    dev_settings = settings.parse(document or {})
    answers = HostAnswers(dev_settings, model)
    env = checkout_env(project)
    with open_session(project, answers, dev_settings, env=env) as session:
        if start:
            assert session.start(), texts(session.entries)
        yield session


def texts(entries: list[Entry], *kinds: str) -> list[str]:
    return [entry.text for entry in entries if not kinds or entry.kind in kinds]


def wait_for(session: DevSession, found: Callable[[list[Entry]], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not found(session.since(0)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in the log:\n" + "\n".join(texts(session.entries)))
        time.sleep(0.02)


def logged(session: DevSession, kind: str, words: str) -> None:
    """Wait until an entry of `kind` holding `words` is in the log."""
    wait_for(
        session,
        lambda entries: any(e.kind == kind and words in e.text for e in entries),
        f"{kind} entry with {words!r}",
    )
