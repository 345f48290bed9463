"""The option matrix, and the rendered projects every test shares.

Each entry is rendered once per test session, set up as its README says (git, uv sync on
the entry's interpreter) and shared by all the tests. Together the entries cover every
shape on the oldest and the newest Python these machines have, every minimum Python the
template offers that they can run, every license, the example tool on and off, and the
longest id; one render cannot run at all here (Python 3.14) and is checked statically.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rendering import read_answers, read_toml

ODD_DESCRIPTION = "Says \"hi\" and 'bye' with a back\\slash, ünïcødé — *not* <b>html</b>"


@dataclass(frozen=True)
class Case:
    answers: dict[str, Any]
    python: str  # the interpreter of the project's environment ("newest": 3.14, else 3.13)

    @property
    def shape(self) -> str:
        shape: str = self.answers.get("plugin_shape", "echo")
        return shape


MATRIX: dict[str, Case] = {
    "echo": Case({"plugin_id": "echo_plugin"}, "3.10"),
    "echo_tool": Case(
        {
            "plugin_id": "tool_plugin",
            "with_example_tool": True,
            "python_min": "3.13",
            "license": "Apache-2.0",
            "description": ODD_DESCRIPTION,
        },
        "newest",
    ),
    "poller": Case(
        {
            "plugin_id": "a_plugin_id_of_exactly_32_chars_",
            "plugin_shape": "poller",
            "license": "BSD-3-Clause",
            "channel_kind": "custom_kind",
        },
        "3.10",
    ),
    "poller_newest": Case(
        {"plugin_id": "feed_plugin", "plugin_shape": "poller", "with_example_tool": True}, "newest"
    ),
    "webhook": Case(
        {"plugin_id": "hook_plugin", "plugin_shape": "webhook", "with_example_tool": True}, "3.10"
    ),
    "webhook_newest": Case(
        {"plugin_id": "hook_plugin", "plugin_shape": "webhook", "python_min": "3.12"}, "newest"
    ),
    "outbound": Case({"plugin_id": "out_plugin", "plugin_shape": "outbound"}, "3.10"),
    "outbound_newest": Case(
        {"plugin_id": "out_plugin", "plugin_shape": "outbound", "python_min": "3.11"}, "newest"
    ),
    "tool": Case({"plugin_id": "ask_plugin", "plugin_shape": "tool"}, "3.10"),
    "tool_newest": Case(
        {"plugin_id": "ask_plugin", "plugin_shape": "tool", "python_min": "3.12"}, "newest"
    ),
}


@dataclass(frozen=True)
class Project:
    case: str
    path: Path
    answers: dict[str, Any]
    python: str

    @classmethod
    def at(cls, case: str, path: Path, python: str) -> Project:
        return cls(case, path, read_answers(path), python)

    @property
    def plugin_id(self) -> str:
        plugin_id: str = self.answers["plugin_id"]
        return plugin_id

    @property
    def python_version(self) -> str:
        """The minor version of the project's environment, such as "3.10"."""
        probe = [self.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()

    @property
    def shape(self) -> str:
        return MATRIX[self.case].shape

    @property
    def package(self) -> Path:
        """The package folder: the id is also the package name."""
        return self.path / "src" / self.plugin_id

    @property
    def launcher(self) -> Path:
        return self.path / "bin" / self.plugin_id

    @property
    def env_prefix(self) -> str:
        return self.plugin_id.upper()

    @property
    def manifest(self) -> dict[str, Any]:
        return read_toml(self.path / "nexo-plugin.toml")

    @property
    def kind(self) -> str | None:
        """The channel kind, None for a plugin without a channel (the tool shape)."""
        channels = self.manifest["plugin"].get("channels", {}).get("register", [])
        return channels[0]["kind"] if channels else None

    @property
    def tools(self) -> list[str]:
        tools: list[str] = self.manifest["plugin"].get("extends", {}).get("tools", [])
        return tools

    def start_env(self, scratch: Path) -> dict[str, str]:
        """Settings that let the plugin start (its required ones, pointing nowhere useful),
        with its state in `scratch`."""
        prefix = self.env_prefix
        nowhere = "http://127.0.0.1:9/"
        settings = {
            "echo": {},
            "poller": {f"{prefix}_FEED_URL": nowhere, f"{prefix}_POLL_SECONDS": "30"},
            "webhook": {f"{prefix}_WEBHOOK_TOKEN": "token", f"{prefix}_LISTEN": "127.0.0.1:0"},
            "outbound": {f"{prefix}_API_URL": nowhere},
            "tool": {f"{prefix}_LLM_PROVIDER": "provider", f"{prefix}_LLM_MODEL": "model"},
        }[self.shape]
        # The launcher of an installed plugin runs python3 unless told: give it this one.
        return {
            **settings,
            f"{prefix}_STATE_DIR": str(scratch / "state"),
            f"{prefix}_PYTHON": self.python,
        }
