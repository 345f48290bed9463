"""Property-based fuzzing of the plugin process, from source and installed: random, truncated
and hostile frames never put a byte on stdout that is not one strict-JSON object, never stop
the plugin, and never keep the next valid request from being answered.

Seeded (derandomize) and bounded in examples, so that a run is repeatable and quick; the
named cases that taught us each hazard stay in tests/test_runtime.py and the generated
projects' tests/test_protocol.py.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projects import Project
from scripted_host import ScriptedHost

pytestmark = pytest.mark.parametrize("project", ["echo"], indirect=True)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=16,
)
METHODS = st.sampled_from(
    [
        "initialize",
        "broker.event",
        "tool.invoke",
        "llm.complete.delta",
        "memory.recall",
        "no.such.method",
    ]
) | VALUES.filter(lambda value: value != "shutdown")  # shutdown would end the run: not hostile


@st.composite
def frames(draw: st.DrawFn, kind: str) -> dict[str, object]:
    frame: dict[str, object] = {"jsonrpc": draw(st.sampled_from(["2.0", "1.0", 2]))}
    for key, values in (
        ("id", VALUES),
        ("method", METHODS),
        ("params", VALUES),
        ("result", VALUES),
        ("error", VALUES),
    ):
        if draw(st.booleans()):
            frame[key] = draw(values)
    if draw(st.booleans()):  # a broker.event the echo plugin acts on, with a random payload
        topic = f"plugin.outbound.{kind}" + draw(st.sampled_from(["", ".room", ".a.b"]))
        event = {
            "id": draw(VALUES),
            "topic": topic,
            "source": draw(VALUES),
            "session_id": draw(VALUES),
            "payload": draw(VALUES),
        }
        frame.update(method="broker.event", params={"topic": topic, "event": event})
    return frame


# Tokens no strict parser accepts, numbers out of range, structures too deep or too long.
HOSTILE = [
    b"NaN",
    b"-Infinity",
    b"Infinity",
    b"1e400",
    b"-1e999",
    b"9" * 5000,
    b"[" * 5000,
    b'"\xff\xfe"',
    b"\x00",
]


@st.composite
def lines(draw: st.DrawFn, kind: str) -> bytes:
    text = json.dumps(draw(frames(kind))).encode()
    how = draw(st.sampled_from(["whole", "truncated", "hostile value", "random bytes", "array"]))
    if how == "truncated":
        return text[: draw(st.integers(min_value=0, max_value=max(len(text) - 1, 0)))]
    if how == "hostile value":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        return text[:at] + draw(st.sampled_from(HOSTILE)) + text[at:]
    if how == "random bytes":
        return draw(st.binary(max_size=64)).replace(b"\n", b" ")
    if how == "array":
        return b"[" + text + b"]"
    return text


@pytest.fixture(scope="module", params=["from-source", "installed"])
def plugin(
    request: pytest.FixtureRequest, project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScriptedHost]:
    """One long-lived plugin process that every example talks to."""
    folder = (
        project.path if request.param == "from-source" else request.getfixturevalue("installed")
    )
    cwd = tmp_path_factory.mktemp("fuzz")
    env = {
        **os.environ,
        **project.start_env(cwd),
        "XDG_CACHE_HOME": str(cwd / "cache"),
        f"{project.env_prefix}_LOG_LEVEL": "CRITICAL",
    }
    with ScriptedHost([str(folder / "bin" / project.plugin_id)], cwd=cwd, env=env) as host:
        yield host
        host.proc.stdin.close()
        host.rest(timeout=30)
        assert host.exit_code() == 0


PINGS = itertools.count()


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_input_never_corrupts_stdout_nor_stops_the_plugin(
    plugin: ScriptedHost, project: Project, data: st.DataObject
) -> None:
    sent = data.draw(st.lists(lines(str(project.kind)), min_size=1, max_size=6))
    for line in sent:
        plugin.write(line + b"\n")
    ping = f"ping-{next(PINGS)}"
    plugin.send(
        {"jsonrpc": "2.0", "id": ping, "method": "initialize", "params": {"nexo_version": "0.1.5"}}
    )
    # Whatever came before the answer was strict JSON, one object per line (frame() checks).
    while (frame := plugin.frame(timeout=10)).get("id") != ping:
        assert "method" in frame or "error" in frame or "result" in frame, frame
    assert frame["result"]["manifest"]["plugin"]["id"] == project.plugin_id
    assert plugin.proc.poll() is None, plugin.stderr_text()


def test_the_fuzzed_plugin_is_the_plugin(project: Project, tmp_path: Path) -> None:
    # A control: the same host, frames and ping, against a process that is not the plugin,
    # fail (stdout that is not JSON is caught).
    impostor = ["sh", "-c", "cat >/dev/null & echo 'not json'"]
    with ScriptedHost(impostor, cwd=tmp_path) as host, pytest.raises((AssertionError, ValueError)):
        host.frame(timeout=5)
