"""The runtime under handlers written for each case: fail-fast start, the author API, strict
JSON, background tasks, host calls, stopping, and the guarantees of the fast paths (order,
drain, nothing lost). On the echo renders for the oldest and newest Python (the runtime is
the same for every shape), each test in a copy of the project with its own handlers.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from projects import Project
from scripted_host import INIT, ScriptedHost

pytestmark = pytest.mark.parametrize("project", ["echo", "echo_tool"], indirect=True)

SHUTDOWN = {"jsonrpc": "2.0", "id": 99, "method": "shutdown"}


def variant(
    project: Project,
    tmp_path: Path,
    handlers: str,
    *,
    tools: list[str] | None = None,
    env: list[str] | None = None,
) -> Path:
    """A copy of the project whose handlers.py is `handlers`, declaring `tools` and the
    required settings `env` in its manifest; it uses the project's environment."""
    copy = tmp_path / "variant"
    ignored = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*_cache")
    shutil.copytree(project.path, copy, ignore=ignored)
    (copy / ".venv").symlink_to(project.path / ".venv")
    (copy / "src" / project.plugin_id / "handlers.py").write_text(handlers)
    manifest = copy / "nexo-plugin.toml"
    text = re.sub(r"(?ms)^\[plugin\.extends\]\ntools = .*?\n\n", "", manifest.read_text())
    if tools:
        text = text.replace(
            "[plugin.meta]", f"[plugin.extends]\ntools = {json.dumps(tools)}\n\n[plugin.meta]"
        )
    if env:
        text = text.replace('bins = ["python3"]', f'bins = ["python3"]\nenv = {json.dumps(env)}')
    manifest.write_text(text)
    return copy


def run(copy: Path, project: Project, cwd: Path, **env: str) -> ScriptedHost:
    return ScriptedHost([str(copy / "bin" / project.plugin_id)], cwd=cwd, env={**os.environ, **env})


def event(project: Project, payload: object, rest: str = "") -> dict:
    topic = f"plugin.outbound.{project.kind}{rest}"
    body = {
        "id": "6f1c1a52-7f0e-4d59-9d0c-2c5f3bb3b2a1",
        "timestamp": "2026-11-21T10:00:00Z",
        "topic": topic,
        "source": "agent",
        "session_id": None,
        "payload": payload,
    }
    return {"jsonrpc": "2.0", "method": "broker.event", "params": {"topic": topic, "event": body}}


def refused_start(host: ScriptedHost) -> str:
    """Send initialize to a plugin that must refuse to start: exit 1, nothing on stdout, one
    line on stderr (what the daemon keeps); that line."""
    host.write(json.dumps(INIT).encode() + b"\n")
    assert host.exit_code(timeout=15) == 1
    lines = host.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- a fail-fast start ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handlers", "message"),
    [
        (
            "def on_event(plugin, topic, event):\n    pass\n  oops\n",
            "cannot import handlers.py: IndentationError",
        ),
        ("import no_such_module\n", "cannot import handlers.py: ModuleNotFoundError"),
        (
            "async def on_start(plugin):\n    raise RuntimeError('no database')\n",
            "on_start failed: RuntimeError: no database",
        ),
        (
            "def on_start(plugin):\n    raise OSError('no database')\n",
            "on_start failed: OSError: no database",
        ),
        (
            "import asyncio\nasync def on_start(plugin):\n    await asyncio.sleep(60)\n",
            "on_start did not finish within 4 s",
        ),
        (
            "def on_event(plugin, topic, event):\n    pass\n",
            "handlers.on_event must be an `async def` function",
        ),
    ],
    ids=[
        "syntax-error",
        "import-error",
        "async-on-start-raises",
        "plain-on-start-raises",
        "on-start-hangs",
        "sync-hook",
    ],
)
def test_a_plugin_that_cannot_serve_never_answers_initialize(
    project: Project, tmp_path: Path, handlers: str, message: str
) -> None:
    copy = variant(project, tmp_path, handlers)
    with run(copy, project, tmp_path) as host:
        assert message in refused_start(host)


TOOL_HANDLERS = """
from nexo_plugin_sdk import ToolDef, text_result

def tools(plugin):
    return [ToolDef(name=name, description="x") for name in {served}]

async def on_tool(plugin, invocation):
    return text_result("ok")
"""


@pytest.mark.parametrize(
    ("declared", "served", "message"),
    [
        (
            ["{id}_a", "{id}_b"],
            ["{id}_a"],
            "declares tools ['{id}_b'] in [plugin.extends].tools that handlers.tools() does not serve",
        ),
        (
            ["{id}_a"],
            ["{id}_a", "{id}_c"],
            "handlers.tools() serves ['{id}_c'], which [plugin.extends].tools",
        ),
        ([], ["{id}_a"], "handlers.tools() serves ['{id}_a']"),
    ],
    ids=["declared-not-served", "served-not-declared", "no-extends"],
)
def test_tools_out_of_step_with_the_manifest_refuse_the_start(
    project: Project, tmp_path: Path, declared: list[str], served: list[str], message: str
) -> None:
    fill = lambda names: [name.format(id=project.plugin_id) for name in names]  # noqa: E731
    copy = variant(
        project, tmp_path, TOOL_HANDLERS.format(served=fill(served)), tools=fill(declared)
    )
    with run(copy, project, tmp_path) as host:
        assert message.format(id=project.plugin_id) in refused_start(host)
    check = ScriptedHost([str(copy / "bin" / project.plugin_id), "--check"], cwd=tmp_path)
    with check:
        assert check.exit_code() == 1
    assert message.format(id=project.plugin_id) in check.stderr.decode()


CONFIG_HANDLERS = """
from dataclasses import dataclass
from pathlib import Path
from .api import Secret

@dataclass(frozen=True)
class Config:
    url: str
    token: Secret
    retries: int = 3
    ratio: float = 0.5
    verbose: bool = False
    cache: Path | None = None

async def on_start(plugin):
    plugin.log.info("config %r", plugin.config)
"""


def test_settings_are_typed_all_problems_reported_at_once_and_secrets_never_shown(
    project: Project, tmp_path: Path
) -> None:
    prefix = project.env_prefix
    copy = variant(project, tmp_path, CONFIG_HANDLERS, env=[f"{prefix}_URL", f"{prefix}_TOKEN"])
    bad = {
        f"{prefix}_URL": "",
        f"{prefix}_TOKEN": "hunter2",
        f"{prefix}_RETRIES": "many",
        f"{prefix}_RATIO": "nan?",
        f"{prefix}_VERBOSE": "perhaps",
    }
    with run(copy, project, tmp_path, **bad) as host:
        line = refused_start(host)
    for problem in (
        f"{prefix}_URL is empty (str, required)",
        f"{prefix}_RETRIES='many' is not an integer",
        f"{prefix}_RATIO='nan?' is not a finite number",
        f"{prefix}_VERBOSE='perhaps' is not a boolean",
    ):
        assert problem in line
    good = {
        **bad,
        f"{prefix}_URL": "http://x",
        f"{prefix}_RETRIES": "5",
        f"{prefix}_RATIO": "2",
        f"{prefix}_VERBOSE": "yes",
        f"{prefix}_CACHE": "~/cache",
    }
    with run(copy, project, tmp_path, **good) as host:
        host.call(INIT)
        host.send(SHUTDOWN)
        host.frame()
        assert host.exit_code() == 0
    logged = host.stderr.decode()
    assert "retries=5, ratio=2.0, verbose=True" in logged
    assert "token=Secret('********')" in logged
    assert "hunter2" not in logged


def test_a_required_setting_missing_from_the_manifest_refuses_the_start(
    project: Project, tmp_path: Path
) -> None:
    copy = variant(project, tmp_path, CONFIG_HANDLERS, env=[f"{project.env_prefix}_URL"])
    with run(copy, project, tmp_path) as host:
        line = refused_start(host)
    assert (
        f"Config.token is required, but {project.env_prefix}_TOKEN is not in [plugin.requires].env"
        in line
    )


STATE_HANDLERS = """
async def on_start(plugin):
    path = plugin.state_dir
    plugin.log.info("state in %s", path)
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"{prefix}_STATE_DIR": "{tmp}/override"}, "{tmp}/override"),
        ({"NEXO_STATE_ROOT": "{tmp}/root"}, "{tmp}/root/plugins/{id}"),
        ({"XDG_DATA_HOME": "{tmp}/data"}, "{tmp}/data/nexo/state/plugins/{id}"),
        ({"HOME": "{tmp}/home"}, "{tmp}/home/.local/share/nexo/state/plugins/{id}"),
    ],
    ids=["override", "daemon-root", "xdg", "home"],
)
def test_the_state_folder_follows_the_daemon_layout(
    project: Project, tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    copy = variant(project, tmp_path, STATE_HANDLERS)
    fill = lambda text: text.format(prefix=project.env_prefix, tmp=tmp_path, id=project.plugin_id)  # noqa: E731
    env = {
        name: "" for name in (f"{project.env_prefix}_STATE_DIR", "NEXO_STATE_ROOT", "XDG_DATA_HOME")
    }
    env |= {fill(name): fill(value) for name, value in variables.items()}
    with run(copy, project, tmp_path, **env) as host:
        host.call(INIT)
        host.send(SHUTDOWN)
        host.frame()
        assert host.exit_code() == 0
    folder = Path(fill(expected))
    assert f"state in {folder}" in host.stderr.decode()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("where", ["inside-the-plugin", "not-writable"])
def test_an_unusable_state_folder_refuses_the_start(
    project: Project, tmp_path: Path, where: str
) -> None:
    copy = variant(project, tmp_path, STATE_HANDLERS)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    folder = copy / "state" if where == "inside-the-plugin" else blocked / "state"
    with run(copy, project, tmp_path, **{f"{project.env_prefix}_STATE_DIR": str(folder)}) as host:
        line = refused_start(host)
    assert (
        "is inside the plugin's folder" if where == "inside-the-plugin" else "cannot use"
    ) in line
    assert f"set {project.env_prefix}_STATE_DIR" in line


# -- strict JSON out, whatever a handler does -----------------------------------------------

UNSENDABLE_HANDLERS = """
from nexo_plugin_sdk import ToolDef

async def on_event(plugin, topic, event):
    value = event.payload["value"]
    try:
        await plugin.publish(plugin.inbound_topic(topic), {"value": {"nan": float("nan"), "inf": float("inf"), "set": {1}}[value]})
    except ValueError as error:
        await plugin.publish(plugin.inbound_topic(topic), {"refused": str(error)})

def tools(plugin):
    return [ToolDef(name=plugin.id + "_bad", description="returns what JSON cannot hold")]

async def on_tool(plugin, invocation):
    return {"score": float("inf")}
"""


def test_a_value_that_is_not_json_is_an_error_for_the_handler(
    project: Project, tmp_path: Path
) -> None:
    copy = variant(project, tmp_path, UNSENDABLE_HANDLERS, tools=[f"{project.plugin_id}_bad"])
    with run(copy, project, tmp_path) as host:
        host.call(INIT)
        refusals = []
        for value in ("nan", "inf", "set"):
            host.send(event(project, {"value": value}))
            refusals.append(host.frame()["params"]["event"]["payload"]["refused"])
        reply = host.call(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tool.invoke",
                "params": {"tool_name": f"{project.plugin_id}_bad", "args": {}},
            }
        )
        host.send(SHUTDOWN)
        host.frame()
        assert host.exit_code() == 0
    assert "Out of range float values are not JSON compliant" in refusals[0]
    assert "Out of range float values" in refusals[1]
    assert "not JSON serializable" in refusals[2]
    assert reply["error"]["code"] == -33403
    assert "the tool's result is not strict JSON" in reply["error"]["message"]
    assert "cannot be sent" in host.stderr.decode()


@pytest.mark.parametrize("request_id", [b"NaN", b"Infinity", b"1e400", b"-1e999"])
def test_an_id_that_is_not_json_is_never_echoed(
    project: Project, tmp_path: Path, request_id: bytes
) -> None:
    with ScriptedHost(
        [str(project.launcher)], cwd=tmp_path, env={**os.environ, **project.start_env(tmp_path)}
    ) as host:
        host.write(b'{"jsonrpc": "2.0", "id": ' + request_id + b', "method": "initialize"}\n')
        assert host.call(INIT)["id"] == 1  # the first was skipped, the next answered
        host.send(SHUTDOWN)
        host.frame()
        assert host.exit_code() == 0
    assert "malformed frame skipped" in host.stderr.decode()


# -- background tasks and stopping ----------------------------------------------------------

BACKGROUND_HANDLERS = """
import asyncio

async def on_start(plugin):
    try:
        await plugin.publish("plugin.inbound.{kind}", {"too": "early"})
    except RuntimeError as error:
        plugin.log.info("refused: %s", error)
    plugin.run_background(tick, plugin, name="ticker")
    plugin.run_background(crash, name="crasher")

async def tick(plugin):
    n = 0
    try:
        while True:
            await plugin.publish("plugin.inbound.{kind}", {"tick": n})
            n += 1
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        plugin.log.info("ticker cancelled after %d", n)
        raise

async def crash():
    raise ValueError("boom")

async def on_shutdown(plugin):
    plugin.log.info("on_shutdown ran")
"""


@pytest.mark.parametrize("stop", ["shutdown", "close-stdin", "sigterm", "sigint"])
def test_background_tasks_run_after_the_handshake_and_stop_with_the_plugin(
    project: Project, tmp_path: Path, stop: str
) -> None:
    copy = variant(project, tmp_path, BACKGROUND_HANDLERS.replace("{kind}", str(project.kind)))
    with run(copy, project, tmp_path) as host:
        time.sleep(0.5)
        assert host.call(INIT)["id"] == 1  # the first frame: nothing was published before it
        ticks = [host.frame()["params"]["event"]["payload"]["tick"] for _ in range(3)]
        assert ticks == [0, 1, 2]
        if stop == "shutdown":
            host.send(SHUTDOWN)
        elif stop == "close-stdin":
            host.proc.stdin.close()
        else:
            host.proc.send_signal(signal.SIGTERM if stop == "sigterm" else signal.SIGINT)
        rest = host.rest()
        assert host.exit_code() == 0
    # Ticks may still come while it stops, then the reply to shutdown, if asked, last.
    assert all("method" in frame for frame in rest[:-1])
    if stop == "shutdown":
        assert rest[-1] == {"jsonrpc": "2.0", "id": 99, "result": {"ok": True}}
    stderr = host.stderr.decode()
    assert "refused: cannot publish on" in stderr
    assert "before the handshake" in stderr
    assert "background task crasher crashed" in stderr
    assert "ValueError: boom" in stderr
    assert "ticker cancelled after" in stderr
    assert stderr.index("ticker cancelled") < stderr.index("on_shutdown ran")


def test_a_critical_background_crash_stops_the_plugin(project: Project, tmp_path: Path) -> None:
    handlers = BACKGROUND_HANDLERS.replace('name="crasher"', 'name="crasher", critical=True')
    copy = variant(project, tmp_path, handlers.replace("{kind}", str(project.kind)))
    with run(copy, project, tmp_path) as host:
        host.call(INIT)
        host.rest()  # ticks, until the crash stops it
        assert host.exit_code() == 1
    assert "on_shutdown ran" in host.stderr.decode()


ORDER_HANDLERS = """
import asyncio

async def on_event(plugin, topic, event):
    n = event.payload["n"]
    await plugin.publish(plugin.inbound_topic(topic), {"n": n, "step": 1})
    if n % 7 == 0:
        await asyncio.sleep(0.2)
    await plugin.publish(plugin.inbound_topic(topic), {"n": n, "step": 2})
"""


def test_publishes_keep_their_order_and_handlers_drain_on_shutdown(
    project: Project, tmp_path: Path
) -> None:
    copy = variant(project, tmp_path, ORDER_HANDLERS)
    with run(copy, project, tmp_path) as host:
        host.call(INIT)
        for n in range(50):
            host.send(event(project, {"n": n}))
        host.send(SHUTDOWN)
        frames = [host.frame() for _ in range(101)]
        assert host.exit_code() == 0
    *publishes, reply = frames
    assert reply == {"jsonrpc": "2.0", "id": 99, "result": {"ok": True}}
    steps: dict[int, list[int]] = {}
    for frame in publishes:
        payload = frame["params"]["event"]["payload"]
        steps.setdefault(payload["n"], []).append(payload["step"])
    assert steps == {n: [1, 2] for n in range(50)}  # each handler's publishes, in order


def test_no_frame_is_lost_at_eof_after_a_burst(project: Project, tmp_path: Path) -> None:
    with ScriptedHost([str(project.launcher)], cwd=tmp_path) as host:
        host.call(INIT)
        burst = b"".join(json.dumps(event(project, {"n": n})).encode() + b"\n" for n in range(3000))

        def write_then_close() -> None:  # while this thread reads: pipes are finite
            host.write(burst)
            host.proc.stdin.close()

        writer = threading.Thread(target=write_then_close)
        writer.start()
        echoed = [
            host.frame(timeout=30)["params"]["event"]["payload"]["echoed_payload"]["n"]
            for _ in range(3000)
        ]
        writer.join()
        assert host.exit_code() == 0
    assert echoed == list(range(3000))


# -- host calls -----------------------------------------------------------------------------

HOST_HANDLERS = """
from nexo_plugin_sdk import ToolDef, text_result, RpcError

def tools(plugin):
    return [ToolDef(name=plugin.id + "_recall", description="recall")]

async def on_tool(plugin, invocation):
    try:
        entries = await plugin.broker.memory_recall(agent_id="a", query="q")
    except RpcError as error:
        return text_result(type(error).__name__ + ": " + str(error), is_error=True)
    return text_result(",".join(entry.content for entry in entries))
"""


def test_host_calls_survive_bad_answers_and_time_out(project: Project, tmp_path: Path) -> None:
    tool = f"{project.plugin_id}_recall"
    copy = variant(project, tmp_path, HOST_HANDLERS, tools=[tool])
    invoke = {"jsonrpc": "2.0", "method": "tool.invoke", "params": {"tool_name": tool, "args": {}}}
    with run(copy, project, tmp_path, **{f"{project.env_prefix}_HOST_TIMEOUT": "0.5"}) as host:
        host.call(INIT)
        texts = []
        answers = [
            {"result": {"entries": [{"id": "1", "agent_id": "a", "content": "remembered"}]}},
            {"error": {"code": -32603, "message": "no memory backend"}},
            {"error": "not an object"},
            None,  # silence: the plugin's own timeout
        ]
        for number, answer in enumerate(answers):
            host.send({**invoke, "id": 10 + number})
            request = host.frame()
            assert request["method"] == "memory.recall"
            # Answers the daemon should never send come first; none stops the plugin.
            host.write(b'{"jsonrpc": "2.0", "id": [1], "result": {}}\n')
            host.write(
                b'{"jsonrpc": "2.0", "method": "llm.complete.delta", "params": {"request_id": [1]}}\n'
            )
            if answer is not None:
                host.send({"jsonrpc": "2.0", "id": request["id"], **answer})
            texts.append(host.frame()["result"]["content"][0]["text"])
        host.send(SHUTDOWN)
        host.frame()
        assert host.exit_code() == 0
    assert texts[0] == "remembered"
    assert texts[1] == "RpcServerError: rpc error -32603: no memory backend"
    assert texts[2].startswith("RpcServerError: rpc error -32603")
    assert texts[3] == "RpcTimeoutError: no host reply within 0.5s"


# -- the author API contract ----------------------------------------------------------------

# handlers.py as the previous template release generated it (echo shape, with the tool).
PREVIOUS_HANDLERS = """
from __future__ import annotations

from typing import Any

from nexo_plugin_sdk import ToolArgumentInvalid, ToolDef, ToolInvocation, ToolNotFound, text_result

from .runtime import InboundEvent, PluginContext


async def on_event(plugin: PluginContext, topic: str, event: InboundEvent) -> None:
    payload: dict[str, Any] = {"echoed_from": topic, "echoed_payload": event.payload}
    await plugin.publish(plugin.inbound_topic(topic), payload, session_id=event.session_id)


def tools(plugin: PluginContext) -> list[ToolDef]:
    return [ToolDef(name=f"{plugin.id}_echo", description="echo", input_schema={})]


async def on_tool(plugin: PluginContext, invocation: ToolInvocation) -> dict[str, Any]:
    if invocation.tool_name != f"{plugin.id}_echo":
        raise ToolNotFound(invocation.tool_name)
    if not isinstance(invocation.args, dict):
        raise ToolArgumentInvalid("expected an object", details={"got": invocation.args})
    return text_result(invocation.args["text"])


async def on_shutdown(plugin: PluginContext) -> None:
    plugin.log.info("bye")
"""


def test_handlers_of_the_previous_template_run_unchanged(project: Project, tmp_path: Path) -> None:
    tool = f"{project.plugin_id}_echo"
    copy = variant(project, tmp_path, PREVIOUS_HANDLERS, tools=[tool])
    with run(copy, project, tmp_path) as host:
        assert [t["name"] for t in host.call(INIT)["result"]["tools"]] == [tool]
        host.send(event(project, {"text": "hi"}, ".room"))
        publish = host.frame()["params"]
        assert publish["topic"] == f"plugin.inbound.{project.kind}.room"
        assert publish["event"]["payload"]["echoed_payload"] == {"text": "hi"}
        reply = host.call(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tool.invoke",
                "params": {"tool_name": tool, "args": {"text": "ping"}},
            }
        )
        assert reply["result"]["content"][0]["text"] == "ping"
        host.send(SHUTDOWN)
        host.frame()
        assert host.exit_code() == 0
    assert "bye" in host.stderr.decode()


NOISY_HANDLERS = """
import json
import logging
import os
import subprocess
import sys

print("import-time print")
logging.getLogger("noisy").addHandler(logging.StreamHandler(sys.stdout))


async def on_event(plugin, topic, event):
    print("a stray print")
    print(json.dumps({"jsonrpc": "2.0", "method": "broker.publish", "params": {}}))
    sys.stdout.write("no newline at the end")
    sys.__stdout__.write("via sys.__stdout__\\n")
    sys.__stdout__.flush()
    os.write(1, b"straight to descriptor 1\\n")
    subprocess.run(["echo", "from a child process"], check=True)
    logging.getLogger("noisy").error("a log record")
    await plugin.publish(plugin.inbound_topic(topic), {"ok": True})
"""


def test_nothing_but_frames_reaches_stdout(project: Project, tmp_path: Path) -> None:
    copy = variant(project, tmp_path, NOISY_HANDLERS)
    with run(copy, project, tmp_path) as host:
        host.call(INIT)
        host.send(event(project, {}))
        assert host.frame()["params"]["event"]["payload"] == {"ok": True}
        host.proc.stdin.close()
        assert host.exit_code() == 0  # and no other byte on stdout
    stderr = host.stderr.decode()
    for line in (
        "import-time print",
        "a stray print",
        '"method": "broker.publish", "params": {}',
        "no newline at the end",
        "via sys.__stdout__",
        "straight to descriptor 1",
        "from a child process",
        "a log record",
    ):
        assert line in stderr
