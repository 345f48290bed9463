"""The answer combinations the template's tests render, each once per test session.

Every subset of the four capabilities is rendered and checked statically (CASES). Six of
them are also set up as the README says and run: their own checks, tests and release
(FULL). The six are a pairwise covering set: for any two capabilities, a plugin with both,
one with neither and one with each alone are among them, which is where rendered code
meets rendered code (tests/test_projects.py checks it). They spread over the Pythons here
and the other questions' answers: every license, every minimum Python these machines run,
the longest id, a custom channel kind, a description full of quotes and non-ASCII.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from environments import tools_env, version_of
from rendering import read_answers, read_toml

CAPABILITIES = ("webhook", "poller", "outbound", "tools")
ODD_DESCRIPTION = "Says \"hi\" and 'bye' with a back\\slash, ünïcødé — *not* <b>html</b>"


@dataclass(frozen=True)
class Case:
    answers: dict[str, Any]
    python: str  # the interpreter of the project's environment; "newest": 3.14, else 3.13
    full: bool = False  # set up and run, not only rendered

    @property
    def capabilities(self) -> list[str]:
        capabilities: list[str] = self.answers.get("capabilities", [])
        return capabilities


def case_name(capabilities: tuple[str, ...]) -> str:
    return "+".join(capabilities) or "echo"


# Answers besides the capabilities, for the combinations that are set up and run. The
# heaviest run on 3.10 and 3.11, where coverage's tracer costs least.
FULL = {
    (): ({"plugin_id": "echo_plugin"}, "3.10"),
    ("tools",): (
        {
            "plugin_id": "ask_plugin",
            "python_min": "3.13",
            "license": "Apache-2.0",
            "template_updates": "renovate",
        },
        "newest",
    ),
    ("webhook", "poller"): (
        {
            "plugin_id": "a_plugin_id_of_exactly_32_chars_",
            "python_min": "3.12",
            "license": "BSD-3-Clause",
            "channel_kind": "custom_kind",
        },
        "3.12",
    ),
    ("poller", "outbound"): ({"plugin_id": "sync_plugin", "python_min": "3.11"}, "3.11"),
    ("webhook", "outbound", "tools"): (
        {"plugin_id": "relay_plugin", "description": ODD_DESCRIPTION},
        "3.10",
    ),
    CAPABILITIES: ({"plugin_id": "every_plugin"}, "3.11"),
}


def _case(capabilities: tuple[str, ...]) -> Case:
    answers, python = FULL.get(
        capabilities, ({"plugin_id": f"{case_name(capabilities).replace('+', '_')}_p"}, "3.10")
    )
    return Case({**answers, "capabilities": list(capabilities)}, python, capabilities in FULL)


CASES: dict[str, Case] = {
    case_name(combination): _case(combination)
    for size in range(len(CAPABILITIES) + 1)
    for combination in itertools.combinations(CAPABILITIES, size)
}


@dataclass(frozen=True)
class Project:
    """A rendered combination (and, once set up, its environment's interpreter)."""

    case: str
    path: Path
    answers: dict[str, Any]
    python: str | None = None
    tools_env: dict[str, str] = field(default_factory=dict)  # see environments.tools_env

    @classmethod
    def at(cls, case: str, path: Path, python: str | None = None) -> Project:
        """The combination `case` rendered at `path`, and set up with `python`."""
        env = tools_env(python) if python else {}
        return cls(case, path, read_answers(path), python, env)

    @property
    def plugin_id(self) -> str:
        plugin_id: str = self.answers["plugin_id"]
        return plugin_id

    @property
    def capabilities(self) -> list[str]:
        return CASES[self.case].capabilities

    @property
    def python_version(self) -> str:
        """The minor version of the project's environment, such as "3.10"."""
        assert self.python is not None, "the project is not set up"
        return version_of(self.python)

    @property
    def package(self) -> Path:
        """The plugin's package folder: the id is also the package name."""
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
        """The channel kind, None for a plugin without a channel (tools only)."""
        channels = self.manifest["plugin"].get("channels", {}).get("register", [])
        return channels[0]["kind"] if channels else None

    def start_env(self, scratch: Path) -> dict[str, str]:
        """Settings that let the plugin start (its required ones, pointing nowhere useful),
        with its state in `scratch`."""
        prefix = self.env_prefix
        nowhere = "http://127.0.0.1:9/"
        settings = {
            "webhook": {
                f"{prefix}_WEBHOOK_SECRET": "webhook-secret",
                f"{prefix}_WEBHOOK_LISTEN": "127.0.0.1:0",
            },
            "poller": {f"{prefix}_FEED_URL": nowhere, f"{prefix}_POLL_SECONDS": "30"},
            "outbound": {f"{prefix}_DELIVERY_URL": nowhere},
            "tools": {f"{prefix}_LLM_PROVIDER": "provider", f"{prefix}_LLM_MODEL": "model"},
        }
        env = {
            name: value
            for capability in self.capabilities
            for name, value in settings[capability].items()
        }
        env[f"{prefix}_STATE_DIR"] = str(scratch / "state")
        if self.python is not None:  # an installed plugin's launcher runs python3 unless told
            env[f"{prefix}_PYTHON"] = self.python
        return env
