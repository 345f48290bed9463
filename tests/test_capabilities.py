"""Each capability doing its job in a plugin installed from its release tarball, read-only,
run the way the daemon runs it, against real HTTP on 127.0.0.1; and no secret getting out
of it, whatever carries it. The mechanics are tested in depth in tests/runtime; here it is
the generated handlers, manifest and settings, packed and installed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nexo_plugin_runtime import HmacSignature, Secret
from nexo_plugin_runtime.testing import (
    LocalHTTPServer,
    PluginHost,
    assert_daemon_accepts,
    broker_event,
    http_post,
)
from projects import Project

pytestmark = pytest.mark.cases("webhook+outbound+tools", "webhook+poller+outbound+tools")
SECRET = "webhook-secret-value"
TOKEN = "tøken-with-a-non-ascii-letter"  # a header cannot carry it: the HTTP error says so


@pytest.fixture
def api() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as server:
        yield server


def settings(project: Project, tmp_path: Path, api: LocalHTTPServer, **more: str) -> dict[str, str]:
    prefix = project.env_prefix
    env = {
        **project.start_env(tmp_path),
        f"{prefix}_WEBHOOK_SECRET": SECRET,
        f"{prefix}_DELIVERY_URL": api.url("/deliveries"),
        f"{prefix}_HOST_TIMEOUT": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    if "poller" in project.capabilities:
        env |= {f"{prefix}_FEED_URL": api.url("/feed"), f"{prefix}_POLL_SECONDS": "0.3"}
    return {**env, **{f"{prefix}_{name}": value for name, value in more.items()}}


def installed_host(
    project: Project, installed: Path, tmp_path: Path, env: dict[str, str]
) -> PluginHost:
    return PluginHost(
        [str(installed / "bin" / project.plugin_id)], project=installed, cwd=tmp_path, env=env
    )


def published(host: PluginHost) -> dict[str, Any]:
    return assert_daemon_accepts(host.next_notification("broker.publish")["params"], host.plugin_id)


def test_a_signed_webhook_a_delivery_with_retries_and_a_tool_call(
    project: Project, installed: Path, tmp_path: Path, api: LocalHTTPServer
) -> None:
    api.respond("GET", "/feed", json=[])
    api.respond_once("POST", "/deliveries", status=503, headers={"Retry-After": "0"})
    api.respond("POST", "/deliveries", status=200)
    with installed_host(project, installed, tmp_path, settings(project, tmp_path, api)) as host:
        host.initialize()
        url = host.logged_url("webhook listening on")
        body = b'{"ref": "main"}'
        status, answer = http_post(f"{url}push", body, HmacSignature(Secret(SECRET)).sign(body))
        assert status == 202, answer
        event = published(host)
        assert (event["id"], event["payload"]) == (
            answer["event_id"],
            {"path": "/push", "body": {"ref": "main"}},
        )
        host.notify("broker.event", broker_event(f"plugin.outbound.{project.kind}", {"text": "hi"}))
        status_event = published(host)
        assert status_event["topic"] == f"plugin.inbound.{project.kind}.delivery"
        assert (status_event["payload"]["status"], status_event["payload"]["attempts"]) == (
            "delivered",
            2,
        )
        host.answer(
            "memory.recall",
            result={"entries": [{"id": "1", "agent_id": "a", "content": "Tuesday"}]},
        )
        host.answer("llm.complete", result={"content": "On Tuesday.", "finish_reason": "stop"})
        reply = host.invoke_tool(f"{project.plugin_id}_ask", {"question": "When?"})
        assert reply["result"]["content"][0]["text"] == "On Tuesday."
    assert (
        len((project.package / "handlers.py").read_text().splitlines()) < 120
        or "poller" in project.capabilities
    )


@pytest.mark.capability("poller")
def test_the_feed_s_new_items_are_published_once_across_restarts(
    project: Project, installed: Path, tmp_path: Path, api: LocalHTTPServer
) -> None:
    api.respond("GET", "/feed", json=[{"id": 1}, {"id": 2}], headers={"ETag": '"one"'})
    env = settings(project, tmp_path, api)
    with installed_host(project, installed, tmp_path, env) as host:
        host.initialize()
        assert [published(host)["payload"] for _ in range(2)] == [{"id": 1}, {"id": 2}]
    api.respond("GET", "/feed", json=[{"id": 1}, {"id": 2}, {"id": 3}])
    polled = len(api.requests_to("GET", "/feed"))
    with installed_host(project, installed, tmp_path, env) as host:
        host.initialize()
        assert published(host)["payload"] == {"id": 3}
    # The restarted plugin asked conditionally, with what it kept from before.
    assert api.requests_to("GET", "/feed")[polled].header("If-None-Match") == '"one"'


def test_a_secret_with_a_trailing_newline_is_refused_at_start_on_one_line(
    project: Project, installed: Path, tmp_path: Path, api: LocalHTTPServer
) -> None:
    env = settings(project, tmp_path, api, WEBHOOK_SECRET=f"{SECRET}\n")
    with installed_host(project, installed, tmp_path, env) as host:
        host.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
        assert host.wait() == 1
        assert host.next_frame() is None
        (line,) = host.stderr().strip().splitlines()
    assert (
        f"{project.env_prefix}_WEBHOOK_SECRET (a secret, not shown) has whitespace around it"
        in line
    )
    assert SECRET not in line


def test_no_secret_reaches_stderr_or_a_frame_whatever_carries_it(
    project: Project, installed: Path, tmp_path: Path, api: LocalHTTPServer
) -> None:
    feed = api.url("/feed").replace("http://", f"http://reader:{TOKEN}-in-url@")
    env = settings(project, tmp_path, api, DELIVERY_TOKEN=TOKEN, FEED_TOKEN=TOKEN, FEED_URL=feed)
    api.respond("GET", "/feed", json=[])
    with installed_host(project, installed, tmp_path, env) as host:
        host.initialize()
        # The webhook: a body carrying the webhook's own secret is published masked.
        url = host.logged_url("webhook listening on")
        body = json.dumps({"leaked": SECRET}).encode()
        assert http_post(url, body, HmacSignature(Secret(SECRET)).sign(body))[0] == 202
        frames = [published(host)]
        # Delivery: httpx refuses the token in a header; the status tells why, masked.
        host.notify("broker.event", broker_event(f"plugin.outbound.{project.kind}", {"n": 1}))
        frames.append(published(host))
        assert frames[1]["payload"]["status"] == "failed"
        time.sleep(1.0)  # the poller tries and logs its failures
        host.close_stdin()
        host.wait()
        stderr = host.stderr()
    everything = json.dumps(frames, ensure_ascii=False) + json.dumps(frames) + stderr
    for value in (SECRET, TOKEN, f"{TOKEN}-in-url", json.dumps(TOKEN)[1:-1]):
        assert value not in everything, value
    assert "********" in json.dumps(frames)
    assert "********" in stderr or "poller" not in project.capabilities
