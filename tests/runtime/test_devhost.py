"""The dev host (nexo_plugin_runtime.devhost) against real plugin processes: the frames
shown and flagged, tool arguments checked before they are sent, host calls answered from
the settings or a model behind a local OpenAI-compatible server, the HTTP stub, restarts on
a change, record and replay, and every problem of a settings or events file said at once."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from checkouts import plugin_tree
from devhost_plugins import (
    FIXTURES,
    ask_plugin,
    checkout_env,
    dev_session,
    logged,
    texts,
    wait_for,
)
from nexo_plugin_runtime.devhost import console, recording, replay_recording, settings
from nexo_plugin_runtime.devhost.answers import HostAnswers, OpenAICompatible
from nexo_plugin_runtime.devhost.reload import SourceWatcher
from nexo_plugin_runtime.devhost.session import DevSession, UsageError
from nexo_plugin_runtime.testing import LocalHTTPServer

# Speaks the protocol, badly: everything a daemon would drop or refuse.
MISBEHAVING = r"""
import json, sys

def out(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

good = {"id": "6f1c3a52-57c4-4d4b-9d0e-2f9a3b0c1d2e", "timestamp": "2026-12-02T10:00:00Z",
        "topic": "plugin.inbound.proc", "source": "proc", "session_id": None, "payload": {}}
publish = {"jsonrpc": "2.0", "method": "broker.publish", "params": {"topic": "plugin.inbound.proc", "event": good}}
out(json.dumps(publish))
request = json.loads(sys.stdin.readline())
out(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {"manifest": {"plugin": {"id": "proc"}}}}))
out('{"jsonrpc": "2.0", "method": "broker.publish", "params": {"n": NaN}}')
bare = {"topic": "plugin.inbound.elsewhere", "source": "proc", "payload": {}}
out(json.dumps({"jsonrpc": "2.0", "method": "broker.publish", "params": {"topic": "plugin.inbound.elsewhere", "event": bare}}))
out("[1, 2]")
out(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "agents.list"}))
for line in sys.stdin:
    pass
"""


# An echo that logs what it handled, on stderr.
ASK_WITH_LOG = "import logging\n" + textwrap.dedent(
    """
        from nexo_plugin_runtime import InboundEvent, PluginContext

        async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
            logging.getLogger("proc").info("handled %s", event.payload["text"])
            await plugin.publish(plugin.inbound_topic(topic), {"echo": event.payload})
        """
)


def test_what_the_daemon_would_drop_is_flagged(tmp_path: Path) -> None:
    project = ask_plugin(tmp_path / "p")
    script = tmp_path / "misbehaving.py"
    script.write_text(MISBEHAVING)
    dev_settings = settings.DevSettings()
    session = DevSession(project, HostAnswers(dev_settings), command=[sys.executable, str(script)])
    try:
        assert session.start()
        logged(session, "answer", "error #7: -32601")
        flags = "\n".join(texts(session.entries, "flag"))
        assert "published before the initialize reply" in flags
        assert "NaN is not JSON" in flags
        assert (
            "topic 'plugin.inbound.elsewhere' is outside the plugin's channels (plugin.inbound.proc[.more])"
            in flags
        )
        assert "the event has no id; the event has no timestamp" in flags
        assert "not one JSON object" in flags
        assert "the daemon serves no 'agents.list'" in flags
        # The first publish is flagged only for its timing: its event is the daemon's shape.
        assert flags.count("the daemon drops it") == 3
    finally:
        session.stop()


def test_frames_both_ways_with_timing_and_stderr_apart(tmp_path: Path) -> None:
    project = plugin_tree(tmp_path / "p", ASK_WITH_LOG)
    with dev_session(project) as session:
        event_id = session.publish({"text": "hi"})
        logged(session, "plugin", "broker.publish plugin.inbound.proc")
        logged(session, "stderr", "handled hi")
        (sent,) = [e for e in session.entries if e.kind == "host" and "broker.event" in e.text]
        assert sent.frame["params"]["event"]["id"] == event_id
        assert sent.frame["params"]["event"]["source"] == "dev-agent"
        (published,) = [
            e for e in session.entries if e.kind == "plugin" and "broker.publish" in e.text
        ]
        assert published.text == 'broker.publish plugin.inbound.proc {"echo": {"text": "hi"}}'
        assert published.latency is not None
        assert published.latency >= 0
        (reply,) = [
            e for e in session.entries if e.kind == "plugin" and e.text.startswith("result #1")
        ]
        assert reply.latency is not None
        assert reply.latency > 0
        assert not any("handled" in text for text in texts(session.entries, "plugin", "host"))
        assert texts(session.entries, "flag") == []
        with pytest.raises(
            UsageError,
            match=r"only plugin.outbound.proc \(and .more\), not 'plugin.outbound.other'",
        ):
            session.publish({}, "plugin.outbound.other")
        assert session.shutdown() == 0


def test_tool_arguments_are_checked_against_the_schema_before_sending(tmp_path: Path) -> None:
    with dev_session(ask_plugin(tmp_path / "p"), FIXTURES) as session:
        with pytest.raises(UsageError) as refused:
            session.invoke_tool("proc_ask", {"question": 7, "stream": "yes", "extra": 1})
        message = str(refused.value)
        assert "question: 7 is not of type 'string'" in message
        assert "stream: 'yes' is not of type 'boolean'" in message
        assert "'extra' was unexpected" in message
        with pytest.raises(UsageError, match="no tool 'proc_nope' \\(its tools: proc_ask\\)"):
            session.invoke_tool("proc_nope", {})
        assert not [e for e in session.entries if "tool.invoke" in e.text]
        reply = session.invoke_tool("proc_ask", {"question": "When do we deploy?"})
        assert reply is not None
        assert reply["result"]["content"][0]["text"] == "On Tuesday."


def test_host_calls_are_answered_from_the_fixtures_streamed_or_not(tmp_path: Path) -> None:
    with dev_session(ask_plugin(tmp_path / "p"), FIXTURES) as session:
        plain = session.invoke_tool("proc_ask", {"question": "When do we deploy?"})
        assert plain is not None
        assert plain["result"]["content"][0]["text"] == "On Tuesday."
        (recall, completion, *_) = [e.frame for e in session.entries if e.kind == "call"]
        assert recall["params"]["agent_id"] == "dev-agent"
        answered = [e.frame for e in session.entries if e.kind == "answer"]
        entries = answered[0]["result"]["entries"]
        assert [entry["content"] for entry in entries] == ["The deploy window is Tuesday."]
        assert completion["params"]["system_prompt"] == "The deploy window is Tuesday."

        streamed = session.invoke_tool("proc_ask", {"question": "stream it", "stream": True})
        assert streamed is not None
        assert streamed["result"]["content"][0]["text"] == "Streamed reply."
        deltas = [
            e.frame["params"]["chunk"] for e in session.entries if "llm.complete.delta" in e.text
        ]
        assert deltas == ["Stre", "amed ", "reply."]

        failed = session.invoke_tool("proc_ask", {"question": "broken"})
        assert failed is not None
        assert "no provider configured" in failed["error"]["message"]
        silent = session.invoke_tool("proc_ask", {"question": "hang"})
        assert silent is not None
        assert silent["error"]["data"] == {"retry_after_ms": 1000}
        assert "the host leaves llm.complete" in "\n".join(texts(session.entries, "note"))

        unmatched = session.invoke_tool("proc_ask", {"question": "what else?"})
        assert unmatched is not None
        assert (
            "no [[llm]] rule of nexo-dev.toml matches 'what else?'" in unmatched["error"]["message"]
        )


def sse(*chunks: str) -> bytes:
    events: list[dict[str, Any]] = [
        {"choices": [{"delta": {"content": chunk}, "finish_reason": None}]} for chunk in chunks
    ]
    events.append(
        {
            "choices": [{"delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    )
    return (
        b"".join(f"data: {json.dumps(event)}\n\n".encode() for event in events)
        + b"data: [DONE]\n\n"
    )


def test_llm_calls_go_to_an_openai_compatible_endpoint_with_the_key_kept_secret(
    tmp_path: Path,
) -> None:
    key = "sk-dev-test-key-0123456789"
    with LocalHTTPServer() as api:
        whole = {
            "choices": [{"message": {"content": "From the model."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3},
        }
        api.respond_once("POST", "/v1/chat/completions", json=whole)
        api.respond_once(
            "POST",
            "/v1/chat/completions",
            body=sse("Mo", "del."),
            headers={"Content-Type": "text/event-stream"},
        )
        api.respond_once(
            "POST", "/v1/chat/completions", status=401, json={"error": f"bad key {key}"}
        )
        model = OpenAICompatible(api.url("/v1"), key, "local-model")
        with dev_session(ask_plugin(tmp_path / "p"), FIXTURES, model=model) as session:
            plain = session.invoke_tool("proc_ask", {"question": "When do we deploy?"})
            streamed = session.invoke_tool("proc_ask", {"question": "again", "stream": True})
            refused = session.invoke_tool("proc_ask", {"question": "and again"})
            log = "\n".join(texts(session.entries))
        assert plain is not None
        assert streamed is not None
        assert refused is not None
        assert plain["result"]["content"][0]["text"] == "From the model."
        assert streamed["result"]["content"][0]["text"] == "Model."
        assert "401" in refused["error"]["message"]
        assert key not in json.dumps(refused) + log
        first = api.requests[0]
        assert first.header("Authorization") == f"Bearer {key}"
        sent = first.json()
        assert sent["model"] == "local-model"
        assert sent["messages"] == [
            {"role": "system", "content": "The deploy window is Tuesday."},
            {"role": "user", "content": "When do we deploy?"},
        ]
        assert sent["stream"] is False
        assert api.requests[1].json()["stream"] is True


OUTBOUND = """
import urllib.request
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    import os
    request = urllib.request.Request(os.environ["PROC_API"] + "/deliveries", data=b'{"n": 1}', method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    await plugin.publish(plugin.inbound_topic(topic), {"status": status})
"""


def test_the_http_stub_answers_from_the_settings_and_shows_each_request(tmp_path: Path) -> None:
    routes = {
        "env": {"PROC_API": "{http}"},
        "http": [{"path": "/deliveries", "status": 202, "json": {"ok": True}}],
    }
    with dev_session(plugin_tree(tmp_path / "p", OUTBOUND), routes) as session:
        assert session.env["PROC_API"].startswith("http://127.0.0.1:")
        session.publish({"text": "deliver"})
        logged(session, "plugin", '{"status": 202}')
        assert 'POST /deliveries -> 202 {"n": 1}' in texts(session.entries, "http")
    missing = {"env": {"PROC_API": "{http}/nowhere"}, "http": [{"path": "/x"}]}
    with dev_session(plugin_tree(tmp_path / "q", OUTBOUND), missing) as session:
        session.publish({"text": "deliver"})
        logged(session, "plugin", '{"status": 404}')


def test_a_source_change_restarts_the_plugin_and_the_log_goes_on(tmp_path: Path) -> None:
    project = plugin_tree(tmp_path / "p", ASK_WITH_LOG)
    with dev_session(project) as session:
        session.publish({"text": "before"})
        logged(session, "plugin", "before")
        watcher = SourceWatcher(project, session.restart, interval=0.05)
        try:
            handlers = project / "src" / "proc" / "handlers.py"
            handlers.write_text(
                handlers.read_text().replace(
                    '{"echo": event.payload}', '{"changed": event.payload}'
                )
            )
            logged(session, "restart", "src/proc/handlers.py changed: restarting the plugin")
            wait_for(
                session,
                lambda entries: (
                    sum("result #" in e.text and "manifest" in e.text for e in entries) == 2
                ),
                "a second handshake",
            )
        finally:
            watcher.stop()
        session.publish({"text": "after"})
        logged(session, "plugin", '{"changed": {"text": "after"}}')
        assert any("before" in text for text in texts(session.entries, "plugin"))


def test_a_recorded_session_replays_and_a_change_of_behaviour_fails_it(tmp_path: Path) -> None:
    project = ask_plugin(tmp_path / "p")
    (project / settings.FILE_NAME).write_text(
        '[env]\nPROC_HOST_TIMEOUT = "0.2"\n[[llm]]\nmatch = "deploy"\nreply = "On Tuesday."\n'
    )
    path = project / "tests" / "recordings" / "session.jsonl"
    with dev_session(project, FIXTURES, start=False) as session:
        recorder = recording.Recorder(path, session)
        assert session.start()
        session.publish({"text": "one"})
        session.invoke_tool("proc_ask", {"question": "When do we deploy?", "stream": True})
        session.invoke_tool("proc_ask", {"question": "hang"})
        session.wait_quiet(0.2)
        recorder.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"nexo_dev_recording": 1, "plugin": "proc", "version": "0.3.0"}
    assert "PROC_STATE_DIR" not in path.read_text()
    env = checkout_env(project)
    replay_recording("tests/recordings/session.jsonl", project=project, env=env)

    handlers = project / "src" / "proc" / "handlers.py"
    handlers.write_text(
        handlers.read_text().replace('{"echo": event.payload}', '{"echo": event.payload, "new": 1}')
    )
    with pytest.raises(
        AssertionError, match=r"no longer does what session\.jsonl recorded"
    ) as failed:
        replay_recording(path, project=project, env=env)
    differences = str(failed.value).splitlines()
    assert (
        '-{"jsonrpc": "2.0", "method": "broker.publish", "params": {"event": {"id": "<uuid>", "payload": {"echo": {"text": "one"}}, "session_id": "<uuid>", "source": "proc", "timestamp": "<timestamp>", "topic": "plugin.inbound.proc"}, "topic": "plugin.inbound.proc"}}'
        in differences
    )
    assert [line for line in differences if line.startswith("+{")] == [
        '+{"jsonrpc": "2.0", "method": "broker.publish", "params": {"event": {"id": "<uuid>", "payload": {"echo": {"text": "one"}, "new": 1}, "session_id": "<uuid>", "source": "proc", "timestamp": "<timestamp>", "topic": "plugin.inbound.proc"}, "topic": "plugin.inbound.proc"}}'
    ]


def test_settings_problems_are_all_said_at_once() -> None:
    document = {
        "agent": 3,
        "env": {"A": 1},
        "memory": [{"agent": "x"}, {"content": "ok", "tag": []}],
        "llm": [{"match": "(", "error": {"code": "x"}}, {"silent": "yes"}],
        "http": [{"path": "feed"}],
        "extra": True,
    }
    with pytest.raises(settings.SettingsError) as error:
        settings.parse(document)
    message = str(error.value)
    for expected in [
        "nexo-dev.toml.extra: not a setting of nexo-dev (known: agent, env, http, llm, memory)",
        "nexo-dev.toml.agent: should be a string, not 3",
        'env.A: should be a string (write "1"), not 1',
        "memory[0].content: missing (the memory's text)",
        "memory[1].tag: not a setting of nexo-dev (known: agent, content, tags)",
        "llm[0].match: not a regular expression",
        "llm[0].error.code: should be a JSON-RPC error code (an integer), not 'x'",
        "llm[1].silent: should be true or false, not 'yes'",
        'http[0].path: needs a path starting with "/"',
    ]:
        assert expected in message
    assert message.startswith("nexo-dev.toml has 10 problem(s):")


def test_an_events_file_is_read_whole_with_every_bad_line_named(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"payload": {"text": "hi"}}\n# a comment\n{"tool": "proc_ask", "args": {"question": "q"}}\n'
        '{"sleep": 0.1}\n{"shutdown": true}\n{"payload": 1, "other": 2}\nnot json\n'
    )
    with pytest.raises(UsageError) as error:
        console.read_events(events)
    assert f"{events}:6: write one of" in str(error.value)
    assert f"{events}:7: not JSON" in str(error.value)
    events.write_text("\n".join(events.read_text().splitlines()[:5]))
    kinds = [action.kind for action in console.read_events(events)]
    assert kinds == ["event", "tool", "sleep", "shutdown"]


@pytest.mark.parametrize(
    ("typed", "action"),
    [
        ("hello there", console.Action("event", {"text": "hello there"})),
        ('{"n": 1}', console.Action("event", {"n": 1})),
        (
            '/event plugin.outbound.proc.more ["x"]',
            console.Action("event", ["x"], topic="plugin.outbound.proc.more"),
        ),
        (
            '/tool proc_ask {"question": "q"}',
            console.Action("tool", {"question": "q"}, name="proc_ask"),
        ),
        ("/tool proc_ask", console.Action("tool", {}, name="proc_ask")),
        ("/quit", console.Action("quit")),
    ],
)
def test_what_is_typed_at_the_prompt(typed: str, action: console.Action) -> None:
    assert console.parse_command(typed) == action


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("{not json", "looks like JSON but is not"),
        ("/tool", "write /tool NAME"),
        ("/tool x {", "the arguments are not JSON"),
        ("/event", "write /event TOPIC PAYLOAD"),
        ("/nope", "no command /nope"),
    ],
)
def test_what_is_typed_wrong_at_the_prompt_is_explained(typed: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        console.parse_command(typed)
