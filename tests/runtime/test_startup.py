"""The checks before the handshake (startup.py) and the settings they read (config.py): a
plugin that cannot serve says why, every reason at once, and never answers initialize."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Start
from harness import write_plugin
from nexo_plugin_runtime import startup
from nexo_plugin_runtime.manifest import Manifest

CONFIG = """
from dataclasses import dataclass, field
from pathlib import Path
from nexo_plugin_runtime import Secret

@dataclass(frozen=True, kw_only=True)
class Config:
    url: str
    count: int = 3
    ratio: float = 1.5
    verbose: bool = False
    folder: Path | None = None
    token: Secret | None = None
    named: str = field(default="x", metadata={"env": "OTHER_NAME"})
"""


def problems_of(tmp_path: Path, handlers: str, **manifest: tuple[str, ...]) -> list[str]:
    """What startup.load() finds wrong with this plugin (it must find something)."""
    with pytest.raises(startup.StartError) as refused:
        startup.load(write_plugin(tmp_path, handlers, **manifest))
    return refused.value.problems


def prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handlers: str, settings: dict[str, str]
) -> tuple[Manifest, startup.LoadedPlugin]:
    """A loaded plugin that requires ID_URL, with `settings` in the environment."""
    written = write_plugin(tmp_path, handlers, env=("ID_URL",))
    for name, value in settings.items():
        monkeypatch.setenv(name.replace("ID", written.id.upper()), value)
    return written, startup.load(written)


@pytest.mark.parametrize(
    ("handlers", "problem"),
    [
        ("import no_such_module", "cannot import handlers.py: ModuleNotFoundError"),
        ("def broken(:", "cannot import handlers.py: SyntaxError"),
        ("def on_event(plugin, topic, event): pass", "handlers.on_event must be an `async def`"),
        ("def on_shutdown(plugin): pass", "handlers.on_shutdown must be an `async def`"),
        ("on_start = 3", "handlers.on_start must be a function"),
        ("tools = []", "handlers.tools must be a Tools registry"),
        ("class Config: pass", "handlers.Config must be a dataclass"),
    ],
)
def test_a_handlers_py_the_runtime_cannot_use_is_refused(
    tmp_path: Path, handlers: str, problem: str
) -> None:
    assert any(found.startswith(problem) for found in problems_of(tmp_path, handlers))


def test_tools_out_of_step_with_the_manifest_are_refused_both_ways(tmp_path: Path) -> None:
    handlers = """
from nexo_plugin_runtime import ToolCall, Tools
tools = Tools()

@tools.tool("served", "x")
async def served(plugin, call: ToolCall[None]): ...
"""
    found = problems_of(tmp_path, handlers, tools=("ID_declared",))
    assert len(found) == 2
    assert "declares tools" in found[0]
    assert "_declared" in found[0]
    assert "does not declare" in found[1]
    assert "_served" in found[1]


def test_settings_and_the_manifest_agree_both_ways(tmp_path: Path) -> None:
    found = problems_of(tmp_path, CONFIG, env=("ID_UNUSED",))
    assert "Config.url is required, but" in found[0]
    assert "lists INPROC" in found[1]
    assert "_UNUSED, which no field of handlers.Config reads" in found[1]


def test_an_unsupported_setting_type_is_refused(tmp_path: Path) -> None:
    handlers = "from dataclasses import dataclass\n@dataclass\nclass Config:\n    when: complex\n"
    assert (
        "Config.when: type <class 'complex'> is not supported" in problems_of(tmp_path, handlers)[0]
    )


def test_settings_are_read_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"ID_URL": "https://x", "ID_COUNT": " 7 ", "ID_RATIO": "2.5", "ID_VERBOSE": "Yes",
           "ID_FOLDER": "~/data", "ID_TOKEN": "tok-12345", "OTHER_NAME": "y"}  # fmt: skip
    _, loaded = prepared(tmp_path, monkeypatch, CONFIG, env)
    config = startup.prepare(loaded).config
    assert (config.url, config.count, config.ratio, config.verbose) == ("https://x", 7, 2.5, True)
    assert config.folder == Path.home() / "data"
    assert config.token.reveal() == "tok-12345"
    assert repr(config.token) == str(config.token) == "Secret('********')"
    assert config.named == "y"


def test_every_bad_setting_is_named_at_once_and_no_secret_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"ID_URL": "", "ID_COUNT": "many", "ID_RATIO": "nan", "ID_VERBOSE": "perhaps",
           "ID_TOKEN": "tok-12345\n"}  # fmt: skip
    written, loaded = prepared(tmp_path, monkeypatch, CONFIG, env)
    with pytest.raises(startup.StartError) as refused:
        startup.prepare(loaded)
    prefix = written.id.upper()
    assert refused.value.problems == [
        f"{prefix}_URL is empty (str, required): set it in the daemon's environment",
        f"{prefix}_COUNT='many' is not an integer",
        f"{prefix}_RATIO='nan' is not a finite number",
        f"{prefix}_VERBOSE='perhaps' is not a boolean (true/false, yes/no, on/off, 1/0)",
        f"{prefix}_TOKEN (a secret, not shown) has whitespace around it (a trailing newline "
        "from a secret file?): strip it",
    ]
    assert "tok-12345" not in str(refused.value)


@pytest.mark.parametrize("value", ["bad\x7fvalue", "bad\u200bvalue", "\ttab"])
def test_a_secret_with_control_characters_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    _, loaded = prepared(tmp_path, monkeypatch, CONFIG, {"ID_URL": "u", "ID_TOKEN": value})
    with pytest.raises(startup.StartError) as refused:
        startup.prepare(loaded)
    (problem,) = refused.value.problems
    assert "a secret, not shown" in problem
    assert value.strip("\t") not in problem


def test_the_password_of_a_url_setting_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = (
        CONFIG + "\n    def __post_init__(self):\n        raise ValueError(f'no {self.url}')\n"
    )
    _, loaded = prepared(tmp_path, monkeypatch, checked, {"ID_URL": "https://u:hunter2-pw@host/"})
    with pytest.raises(startup.StartError) as refused:
        startup.prepare(loaded)
    assert str(refused.value) == "Config: no https://u:********@host/"
    # Redaction is process-wide: the password is masked wherever it goes from now on.


@pytest.mark.parametrize(
    ("on_start", "problem"),
    [
        (
            "def on_start(plugin):\n    raise ValueError('no way')",
            "on_start failed: ValueError: no way",
        ),
        (
            "from nexo_plugin_runtime import ConfigError\n"
            "def on_start(plugin):\n    raise ConfigError(['first', 'second'])",
            "first; second",
        ),
        ("async def on_start(plugin):\n    raise KeyError('k')", "on_start failed: KeyError: 'k'"),
        (
            "import asyncio\nasync def on_start(plugin):\n    await asyncio.sleep(60)",
            "on_start did not finish within",
        ),
    ],
    ids=["raises", "config-error", "async-raises", "async-hangs"],
)
def test_a_failing_on_start_refuses_the_start_before_initialize(
    start: Start,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    on_start: str,
    problem: str,
) -> None:
    monkeypatch.setattr(startup, "START_TIMEOUT_SECONDS", 0.2)
    plugin = start(on_start, initialize=False)
    assert plugin.wait() == 1  # before reading stdin: no initialize is ever answered
    assert plugin.next_frame() is None  # nothing at all on stdout
    assert problem in caplog.text


@pytest.mark.parametrize("where", ["inside-the-plugin", "not-writable"])
def test_an_unusable_state_folder_refuses_the_start(
    start: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    folder = "{root}/state" if where == "inside-the-plugin" else str(blocked / "state")
    plugin = start(
        "def on_start(plugin):\n    plugin.state('seen').load()\n",
        settings={"ID_STATE_DIR": folder},
        initialize=False,
    )
    assert plugin.wait() == 1
    assert f"set {plugin.plugin_id.upper()}_STATE_DIR to a writable folder" in caplog.text
