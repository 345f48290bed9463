"""Each shape doing its job, installed from its release tarball (read-only) and run from
another directory like the daemon runs it, with real HTTP on 127.0.0.1 and the host's side
played by the independent scripted host."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from http_server import ScriptedServer
from projects import Project
from scripted_host import INIT, ScriptedHost

SHUTDOWN = {"jsonrpc": "2.0", "id": 99, "method": "shutdown"}


def start(project: Project, installed: Path, cwd: Path, **env: str) -> ScriptedHost:
    environment = {
        **os.environ,
        **project.start_env(cwd),
        "XDG_CACHE_HOME": str(cwd / "cache"),
        **env,
    }
    return ScriptedHost([str(installed / "bin" / project.plugin_id)], cwd=cwd, env=environment)


def stop(host: ScriptedHost) -> None:
    host.send(SHUTDOWN)
    while host.frame().get("id") != 99:
        pass
    assert host.exit_code() == 0


@pytest.mark.shape("echo")
def test_an_echo_plugin_echoes(project: Project, installed: Path, tmp_path: Path) -> None:
    topic = f"plugin.outbound.{project.kind}.room"
    event = {"id": "x", "topic": topic, "source": "agent", "session_id": "s", "payload": {"n": 1}}
    with start(project, installed, tmp_path) as host:
        host.call(INIT)
        host.send(
            {"jsonrpc": "2.0", "method": "broker.event", "params": {"topic": topic, "event": event}}
        )
        params = host.frame()["params"]
        stop(host)
    assert params["topic"] == f"plugin.inbound.{project.kind}.room"
    assert params["event"]["session_id"] == "s"
    assert params["event"]["payload"]["echoed_payload"] == {"n": 1}


@pytest.mark.shape("poller")
def test_a_poller_publishes_new_items_once_across_restarts(
    project: Project, installed: Path, tmp_path: Path
) -> None:
    items = [{"id": 1, "title": "one"}, {"id": 2, "title": "two"}]
    with ScriptedServer() as feed:
        feed.answers["/feed"] = (200, {"items": items})
        env = {
            f"{project.env_prefix}_FEED_URL": feed.url("/feed"),
            f"{project.env_prefix}_POLL_SECONDS": "0.1",
        }
        with start(project, installed, tmp_path, **env) as host:
            time.sleep(0.5)
            assert feed.received == [], "polled before the handshake"
            assert host.call(INIT)["id"] == 1  # no publish came before the reply
            published = [host.frame()["params"]["event"]["payload"] for _ in items]
            stop(host)
        assert published == items
        feed.answers["/feed"] = (200, {"items": [*items, {"id": 3}]})
        with start(project, installed, tmp_path, **env) as host:
            host.call(INIT)
            assert host.frame()["params"]["event"]["payload"] == {"id": 3}
            stop(host)


@pytest.mark.shape("webhook")
def test_a_webhook_request_becomes_an_event(
    project: Project, installed: Path, tmp_path: Path
) -> None:
    with start(project, installed, tmp_path) as host:
        host.call(INIT)
        found = host.logged(rb"listening on (http://[^\s,]+)")
        request = urllib.request.Request(
            found.group(1).decode() + "hooks/deploy",
            data=b'{"ref": "main"}',
            method="POST",
            headers={"Authorization": "Bearer token", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.load(response)
        event = host.frame()["params"]["event"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(request.full_url, data=b"{}"), timeout=5)
        stop(host)
    assert event["id"] == answer["event_id"]
    assert event["payload"] == {"path": "/hooks/deploy", "body": {"ref": "main"}}
    assert refused.value.code == 401
    refused.value.close()


@pytest.mark.shape("outbound")
@pytest.mark.parametrize(("status", "delivered"), [(200, "delivered"), (503, "failed")])
def test_an_outbound_event_is_delivered_and_reported(
    project: Project, installed: Path, tmp_path: Path, status: int, delivered: str
) -> None:
    topic = f"plugin.outbound.{project.kind}"
    event = {
        "id": "e-1",
        "topic": topic,
        "source": "agent",
        "session_id": "s",
        "payload": {"to": "x"},
    }
    with ScriptedServer() as api:
        api.answers["/send"] = (status, {})
        env = {
            f"{project.env_prefix}_API_URL": api.url("/send"),
            f"{project.env_prefix}_MAX_ATTEMPTS": "2",
            f"{project.env_prefix}_BACKOFF_SECONDS": "0.01",
        }
        with start(project, installed, tmp_path, **env) as host:
            host.call(INIT)
            host.send(
                {
                    "jsonrpc": "2.0",
                    "method": "broker.event",
                    "params": {"topic": topic, "event": event},
                }
            )
            params = host.frame()["params"]
            stop(host)
    assert params["topic"] == f"{topic.replace('outbound', 'inbound')}.delivery"
    assert params["event"]["payload"]["status"] == delivered
    assert params["event"]["payload"]["http_status"] == status
    assert [json.loads(body) for _, _, body in api.received] == [{"to": "x"}] * (
        1 if status == 200 else 2
    )


@pytest.mark.shape("tool")
@pytest.mark.parametrize("host_answers", ["answers", "errors", "is-silent"])
def test_a_tool_answers_with_the_host_s_memory_and_llm(
    project: Project, installed: Path, tmp_path: Path, host_answers: str
) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tool.invoke",
        "params": {
            "plugin_id": project.plugin_id,
            "tool_name": f"{project.plugin_id}_ask",
            "args": {"question": "When?"},
            "agent_id": "agent-1",
        },
    }
    with start(
        project, installed, tmp_path, **{f"{project.env_prefix}_HOST_TIMEOUT": "0.5"}
    ) as host:
        host.call(INIT)
        host.send(call)
        recall = host.frame()
        assert recall["method"] == "memory.recall"
        assert recall["params"] == {"agent_id": "agent-1", "query": "When?", "limit": 5}
        memories = {"entries": [{"id": "m", "agent_id": "agent-1", "content": "On Tuesday."}]}
        host.send({"jsonrpc": "2.0", "id": recall["id"], "result": memories})
        complete = host.frame()
        assert complete["method"] == "llm.complete"
        assert "On Tuesday." in complete["params"]["system_prompt"]
        if host_answers == "answers":
            host.send({"jsonrpc": "2.0", "id": complete["id"], "result": {"content": "Tuesday."}})
        elif host_answers == "errors":
            host.send(
                {
                    "jsonrpc": "2.0",
                    "id": complete["id"],
                    "error": {"code": -32603, "message": "no provider"},
                }
            )
        reply = host.frame()
        stop(host)
    if host_answers == "answers":
        assert reply["result"]["content"][0]["text"] == "Tuesday."
    else:
        assert reply["error"]["code"] == -33404
