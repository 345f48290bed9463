"""Agent tools (tools.py): schemas from dataclasses and pydantic models, every problem of a
call at once, and tool calls served by the session with the host's memory and LLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
import pytest
from conftest import Start
from nexo_plugin_runtime import ToolArgumentInvalid, ToolCall, Tools
from nexo_plugin_runtime.tools import check, json_schema


@dataclass(frozen=True)
class Inner:
    label: str


@dataclass(frozen=True)
class Arguments:
    """What the tool takes."""

    text: str = field(metadata={"description": "what to say"})
    count: int = 1
    ratio: float = 0.5
    loud: bool = False
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    inner: Inner | None = None
    anything: Any = None


def test_the_schema_of_a_dataclass() -> None:
    schema = json_schema(Arguments)
    assert schema["required"] == ["text"]
    assert schema["additionalProperties"] is False
    assert schema["description"] == "What the tool takes."
    properties = schema["properties"]
    assert properties["text"] == {"type": "string", "description": "what to say"}
    assert properties["count"] == {"type": "integer", "default": 1}
    assert properties["ratio"]["type"] == "number"
    assert properties["loud"]["type"] == "boolean"
    assert properties["mode"]["enum"] == ["a", "b"]
    assert properties["tags"] == {"type": "array", "items": {"type": "string"}}
    assert properties["extra"]["additionalProperties"] == {"type": "integer"}
    assert properties["inner"]["anyOf"][1] == {"type": "null"}
    assert properties["inner"]["anyOf"][0]["required"] == ["label"]
    assert properties["anything"] == {"default": None}


def test_a_good_call_becomes_the_dataclass() -> None:
    problems: list[tuple[str, str]] = []
    value = check(
        {"text": "hi", "count": 2, "ratio": 1, "tags": ["x"], "inner": {"label": "l"}},
        Arguments,
        "",
        problems,
    )
    assert problems == []
    assert value == Arguments("hi", count=2, ratio=1.0, tags=["x"], inner=Inner("l"))
    assert isinstance(value.ratio, float)


def test_every_problem_of_a_call_is_named() -> None:
    problems: list[tuple[str, str]] = []
    check(
        {"count": True, "mode": "c", "tags": ["x", 1], "extra": {"k": "v"}, "inner": {}, "x": 1},
        Arguments,
        "",
        problems,
    )
    assert sorted(problems) == sorted(
        [
            ("x", "unknown argument"),
            ("text", "required"),
            ("count", "expected integer, got boolean"),
            ("mode", "expected one of ['a', 'b'], got 'c'"),
            ("tags[1]", "expected string, got integer"),
            ("extra.k", "expected integer, got string"),
            ("inner.label", "required"),
        ]
    )


@pytest.mark.parametrize("value", [None, [], "text", 3])
def test_arguments_that_are_not_an_object_are_refused(value: object) -> None:
    problems: list[tuple[str, str]] = []
    check(value, Arguments, "", problems)
    assert problems
    assert problems[0][0] == "arguments"


def test_an_unsupported_argument_type_is_refused_when_the_tool_is_declared() -> None:
    tools = Tools()

    @dataclass
    class Bad:
        when: complex

    @tools.tool("bad", "d", args=Bad)
    async def bad(plugin: object, call: ToolCall[Bad]) -> None: ...

    with pytest.raises(TypeError, match="not supported"):
        tools.definitions("p")


def test_the_registry_names_tools_after_the_plugin_and_refuses_mistakes() -> None:
    tools = Tools()

    @tools.tool("echo", "Echo.")
    async def echo(plugin: object, call: ToolCall[Inner]) -> dict[str, Any]:
        return {}

    assert tools.names("myplug") == ["myplug_echo"]
    (definition,) = tools.definitions("myplug")
    assert definition.input_schema["required"] == ["label"]
    with pytest.raises(ValueError, match="registered twice"):
        tools.tool("echo", "again")(echo)
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        tools.tool("no-dash", "x")(echo)
    with pytest.raises(TypeError, match=r"annotate its call parameter as ToolCall\[Args\]"):

        @tools.tool("untyped", "x")
        async def untyped(plugin: object, call: object) -> None: ...


class Query(pydantic.BaseModel):
    question: str
    limit: int = pydantic.Field(default=5, ge=1)


def test_a_pydantic_model_gives_the_schema_and_the_checks() -> None:
    tools = Tools()

    @tools.tool("ask", "Ask.")
    async def ask(plugin: object, call: ToolCall[Query]) -> None: ...

    (definition,) = tools.definitions("p")
    assert definition.input_schema == Query.model_json_schema()
    tool = tools.get("p", "p_ask")
    assert tool is not None
    assert tool.check({"question": "q"}) == Query(question="q")
    with pytest.raises(ToolArgumentInvalid) as refused:
        tool.check({"limit": 0})
    paths = {problem["path"] for problem in refused.value.details["problems"]}
    assert paths == {"question", "limit"}
    assert str(refused.value).startswith("invalid argument: 2 problem(s): ")


TOOLS = """
from dataclasses import dataclass, field
from typing import Any
from nexo_plugin_runtime import PluginContext, ToolCall, Tools, text_result

tools = Tools()

@dataclass(frozen=True)
class Ask:
    question: str
    stream: bool = False

@tools.tool("ask", "Answer from memory.")
async def ask(plugin: PluginContext[None], call: ToolCall[Ask]) -> dict[str, Any]:
    entries = await plugin.broker.memory_recall(agent_id=call.agent_id, query=call.args.question)
    request = {"provider": "p", "model": "m", "messages": [{"role": "user", "content": "q"}]}
    if not call.args.stream:
        result = await plugin.broker.llm_complete(**request)
        return text_result(f"{len(entries)}:{result.content}")
    stream = plugin.broker.llm_complete_stream(**request)
    text = "".join([chunk async for chunk in stream])
    await stream.final_result()
    return text_result(f"{len(entries)}:{text}")

@tools.tool("odd", "Returns what the daemon cannot read.")
async def odd(plugin: PluginContext[None], call: ToolCall[None]) -> Any:
    return {"value": float("inf")}

@tools.tool("crash", "Fails.")
async def crash(plugin: PluginContext[None], call: ToolCall[None]) -> Any:
    raise RuntimeError("the disk is full")
"""
MEMORY = {"entries": [{"id": "1", "agent_id": "a", "content": "c"}]}


@pytest.fixture
def tools_plugin(start: Start) -> Any:
    return start(
        TOOLS,
        tools=("ID_ask", "ID_odd", "ID_crash"),
        settings={"ID_HOST_TIMEOUT": "0.3"},
    )


def test_a_tool_call_uses_the_host_s_memory_and_llm(tools_plugin: Any) -> None:
    tools_plugin.answer("memory.recall", result=MEMORY)
    tools_plugin.answer("llm.complete", result={"content": "yes", "finish_reason": "stop"})
    reply = tools_plugin.invoke_tool(f"{tools_plugin.plugin_id}_ask", {"question": "q"})
    assert reply["result"]["content"][0]["text"] == "1:yes"
    assert tools_plugin.asked("memory.recall") == [
        {"agent_id": "test-agent", "query": "q", "limit": 10}
    ]


def test_a_streamed_reply_is_collected(tools_plugin: Any) -> None:
    tools_plugin.answer("memory.recall", result=MEMORY)
    tools_plugin.answer("llm.complete", stream=["y", "e", "s"], result={"finish_reason": "stop"})
    reply = tools_plugin.invoke_tool(
        f"{tools_plugin.plugin_id}_ask", {"question": "q", "stream": True}
    )
    assert reply["result"]["content"][0]["text"] == "1:yes"
    assert tools_plugin.asked("llm.complete")[0]["stream"] is True


@pytest.mark.parametrize(
    ("script", "code", "data"),
    [
        ({"silent": True}, -33404, {"retry_after_ms": 1000}),
        ({"error": (-32603, "no provider")}, -33404, None),
        ({"stream": ["x"], "silent": True}, -33404, {"retry_after_ms": 1000}),
    ],
    ids=["silent", "host-error", "stream-stalls"],
)
def test_a_host_failure_is_a_tool_unavailable(
    tools_plugin: Any, script: dict[str, Any], code: int, data: Any
) -> None:
    tools_plugin.answer("memory.recall", result=MEMORY)
    tools_plugin.answer("llm.complete", **script)
    stream = "stream" in script
    reply = tools_plugin.invoke_tool(
        f"{tools_plugin.plugin_id}_ask", {"question": "q", "stream": stream}
    )
    assert reply["error"]["code"] == code
    assert reply["error"].get("data") == data


def test_tool_errors_have_the_sdk_s_codes(tools_plugin: Any) -> None:
    prefix = tools_plugin.plugin_id
    assert tools_plugin.invoke_tool(f"{prefix}_nope", {})["error"]["code"] == -33401
    refused = tools_plugin.invoke_tool(f"{prefix}_ask", {"question": 1, "more": 2})["error"]
    assert refused["code"] == -33402
    assert {p["path"] for p in refused["data"]["details"]["problems"]} == {"question", "more"}
    odd = tools_plugin.invoke_tool(f"{prefix}_odd", None)["error"]
    assert odd["code"] == -33403
    assert "not strict JSON" in odd["message"]
    crash = tools_plugin.invoke_tool(f"{prefix}_crash", {})["error"]
    assert (crash["code"], crash["message"]) == (
        -33403,
        "execution failed: RuntimeError: the disk is full",
    )
    assert tools_plugin.request("tool.invoke", {"args": {}})["error"]["code"] == -32602


def test_a_streamed_reply_longer_than_the_limit_is_dropped(start: Start) -> None:
    plugin = start(
        TOOLS.replace(
            "tools = Tools()",
            "tools = Tools()\n\ndef on_start(plugin):\n    plugin.max_stream_chars = 5",
        ),
        tools=("ID_ask", "ID_odd", "ID_crash"),
    )
    plugin.answer("memory.recall", result=MEMORY)
    plugin.answer("llm.complete", stream=["abc", "def", "ghi"], result={"finish_reason": "stop"})
    reply = plugin.invoke_tool(f"{plugin.plugin_id}_ask", {"question": "q", "stream": True})
    assert reply["error"]["code"] == -33404
    assert "max_stream_chars (5)" in reply["error"]["message"]
