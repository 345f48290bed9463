"""nexo-dev.toml: how the dev host runs the plugin on the author's desk.

    agent = "dev-agent"            # the agent the dev host's events and tool calls come from
    [env]                          # the plugin's settings for these sessions (not your secrets);
                                   # a variable set in the environment wins
    MY_PLUGIN_FEED_URL = "{http}/feed"     # {http}: the dev host's own HTTP stub
    MY_PLUGIN_STATE_DIR = "{state}"        # {state}: a scratch folder of the dev host's
    [[memory]]                     # memory.recall answers, by agent
    agent = "dev-agent"
    content = "The deploy window is Tuesday."
    [[llm]]                        # llm.complete answers: the first whose `match` (a regular
    match = "deploy"               # expression) is found in the last message
    reply = "On Tuesday."          # streamed in `chunks` (default: word by word) when asked
    [[llm]]
    match = "broken"
    error = { code = -32603, message = "no provider configured" }   # or: silent = true
    [[http]]                       # what the HTTP stub answers, by path; it shows each request
    path = "/feed"
    json = [{ id = "1", title = "first" }]

Every problem of the file is reported at once, each with where it is and what to write.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "nexo-dev.toml"
DEFAULT_AGENT = "dev-agent"


class SettingsError(ValueError):
    """nexo-dev.toml cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class MemoryFixture:
    agent: str
    content: str
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LlmFixture:
    match: re.Pattern[str]
    reply: str = ""
    chunks: list[str] | None = None
    error: tuple[int, str] | None = None
    silent: bool = False

    def stream(self) -> list[str]:
        """The chunks a streamed reply is sent in."""
        if self.chunks is not None:
            return self.chunks
        return re.findall(r"\S+\s*|\s+", self.reply)


@dataclass(frozen=True)
class HttpFixture:
    path: str
    status: int = 200
    json: Any = None


@dataclass(frozen=True)
class DevSettings:
    agent: str = DEFAULT_AGENT
    env: dict[str, str] = field(default_factory=dict)
    memory: list[MemoryFixture] = field(default_factory=list)
    llm: list[LlmFixture] = field(default_factory=list)
    http: list[HttpFixture] = field(default_factory=list)

    def plugin_env(self, http_url: str, state: str) -> dict[str, str]:
        """[env], with {http} standing for the HTTP stub's address, {state} for nexo-dev's
        scratch folder."""
        return {
            name: value.replace("{http}", http_url).replace("{state}", state)
            for name, value in self.env.items()
        }


def load(path: Path) -> DevSettings:
    """The settings in `path`; defaults when there is no such file."""
    if not path.is_file():
        return DevSettings()
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{path}: not TOML the dev host can read: {error}") from None
    return parse(document, str(path))


class _Reader:
    """Reads one table, noting each problem instead of stopping at the first."""

    def __init__(self, problems: list[str], where: str, table: Any, known: set[str]) -> None:
        self.problems, self.where = problems, where
        self.table: dict[str, Any] = table if isinstance(table, dict) else {}
        if not isinstance(table, dict):
            problems.append(f"{where}: should be a table")
        for key in sorted(set(self.table) - known):
            expected = ", ".join(sorted(known))
            problems.append(f"{where}.{key}: not a setting of nexo-dev (known: {expected})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        value = self.table.get(key, default)
        if value is default:
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            self.problems.append(f"{self.where}.{key}: should be {what}, not {value!r}")
            return default
        return value

    def strings(self, key: str) -> list[str]:
        value = self.get(key, list, [], "a list of strings")
        if not all(isinstance(item, str) for item in value):
            self.problems.append(f"{self.where}.{key}: should be a list of strings")
            return []
        return list(value)


def _list_of_tables(document: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: should be a list of tables, written [[{key}]]")
        return []
    return value


def parse(document: dict[str, Any], where: str = FILE_NAME) -> DevSettings:
    problems: list[str] = []
    top = _Reader(problems, where, document, {"agent", "env", "memory", "llm", "http"})
    agent = top.get("agent", str, DEFAULT_AGENT, "a string")
    env: dict[str, str] = {}
    for name, value in top.get("env", dict, {}, "a table of NAME = value").items():
        if isinstance(value, str):
            env[name] = value
        else:
            problems.append(f'env.{name}: should be a string (write "{value}"), not {value!r}')

    memory = []
    for index, table in enumerate(_list_of_tables(document, "memory", problems)):
        entry = _Reader(problems, f"memory[{index}]", table, {"agent", "content", "tags"})
        content = entry.get("content", str, None, "the memory's text")
        if content is None:
            problems.append(f"memory[{index}].content: missing (the memory's text)")
        else:
            owner = entry.get("agent", str, agent, "a string")
            memory.append(MemoryFixture(owner, content, entry.strings("tags")))

    llm = []
    known = {"match", "reply", "chunks", "error", "silent"}
    for index, table in enumerate(_list_of_tables(document, "llm", problems)):
        rule = _Reader(problems, f"llm[{index}]", table, known)
        pattern = rule.get("match", str, ".*", "a regular expression")
        try:
            match = re.compile(pattern)
        except re.error as error:
            problems.append(f"llm[{index}].match: not a regular expression ({error})")
            match = re.compile(".*")
        chunks = rule.strings("chunks") if "chunks" in rule.table else None
        failed: tuple[int, str] | None = None
        if "error" in rule.table:
            failure = _Reader(
                problems, f"llm[{index}].error", rule.table["error"], {"code", "message"}
            )
            code = failure.get("code", int, None, "a JSON-RPC error code (an integer)")
            message = failure.get("message", str, None, "a string")
            if code is None or message is None:
                problems.append(f"llm[{index}].error: needs both code and message")
            else:
                failed = (code, message)
        llm.append(
            LlmFixture(
                match,
                rule.get("reply", str, "", "a string"),
                chunks,
                failed,
                rule.get("silent", bool, False, "true or false"),
            )
        )

    http = []
    for index, table in enumerate(_list_of_tables(document, "http", problems)):
        route = _Reader(problems, f"http[{index}]", table, {"path", "status", "json"})
        path = route.get("path", str, None, 'a path such as "/feed"')
        if path is None or not path.startswith("/"):
            problems.append(f'http[{index}].path: needs a path starting with "/", such as "/feed"')
            continue
        status = route.get("status", int, 200, "an HTTP status code")
        http.append(HttpFixture(path, status, route.table.get("json")))

    if problems:
        listing = "\n  ".join(problems)
        raise SettingsError(f"{where} has {len(problems)} problem(s):\n  {listing}")
    return DevSettings(agent, env, memory, llm, http)
