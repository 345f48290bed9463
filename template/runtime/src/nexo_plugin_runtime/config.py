"""Plugin settings from the environment: the `Config` dataclass of handlers.py, typed.

The daemon hands a subprocess plugin no configuration of its own, only its environment, and
checks before spawning it that the variables listed in `[plugin.requires].env` of
nexo-plugin.toml are set. So handlers.py describes its settings as a dataclass:

    @dataclass(frozen=True, kw_only=True)
    class Config:
        feed_url: str                   # <ID>_FEED_URL, required
        poll_seconds: float = 60.0      # <ID>_POLL_SECONDS, optional
        feed_token: Secret | None = None

Each field is read from `<ID>_<FIELD>` (the plugin id and the field name in capitals), or
from the name given as `field(metadata={"env": "NAME"})`. Types: str, int, float, bool,
pathlib.Path, Secret, and any of them `| None`. Every problem is reported at once, before
the plugin answers `initialize`. A Secret's value is never shown, and neither is the
password of a URL setting (redaction.py).
"""

from __future__ import annotations

import re
from types import NoneType, UnionType

from . import redaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
# C0 and C1 controls, and the invisible format characters (zero-width, bidi, BOM).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


class Secret:
    """A setting that must never be shown: `reveal()` gives it; repr() and str() hide it, and
    the runtime masks its value in logs, error texts and frames (redaction.py)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        redaction.register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.reveal() == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ConfigError(Exception):
    """The environment does not give a usable configuration; `problems` lists each issue,
    each with what to do about it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Variable:
    """One environment variable of a Config dataclass."""

    __slots__ = ("field", "kind", "name", "required")

    def __init__(self, name: str, field: str, kind: type, required: bool) -> None:
        self.name, self.field, self.kind, self.required = name, field, kind, required


def _secret(text: str) -> Secret:
    if text != text.strip():
        raise ValueError(
            "has whitespace around it (a trailing newline from a secret file?): strip it"
        )
    if CONTROL_CHARACTERS.search(text):
        raise ValueError("holds a control or invisible character: set the bare value")
    return Secret(text)


def _convert(kind: type, text: str) -> Any:
    if kind is str:
        return text
    if kind is Secret:
        return _secret(text)
    if kind.__name__ == "Path":
        return kind(text).expanduser()
    if kind is bool:
        word = text.strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError("is not a boolean (true/false, yes/no, on/off, 1/0)")
    try:
        value = kind(text.strip())
    except ValueError:
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"is not {'an integer' if kind is int else 'a finite number'}")
    return value


def variables(config_class: type, prefix: str) -> list[Variable]:
    """The environment variables `config_class` reads; ConfigError if it cannot be read.
    (dataclasses, typing and pathlib load here, for plugins that have settings.)"""
    import dataclasses
    import typing
    from pathlib import Path

    supported = (str, int, float, bool, Path, Secret)
    if not dataclasses.is_dataclass(config_class):
        raise ConfigError(["handlers.Config must be a dataclass"])
    try:
        hints = typing.get_type_hints(config_class)
    except (NameError, TypeError) as error:
        raise ConfigError([f"handlers.Config has a type that cannot be read: {error}"]) from None
    found, problems = [], []
    for field in dataclasses.fields(config_class):
        if not field.init:
            continue
        kind, optional = hints[field.name], False
        if isinstance(kind, UnionType) or typing.get_origin(kind) is typing.Union:
            members = [member for member in typing.get_args(kind) if member is not NoneType]
            optional = len(members) < len(typing.get_args(kind))
            kind = members[0] if len(members) == 1 else kind
        if kind not in supported:
            problems.append(
                f"Config.{field.name}: type {kind!r} is not supported; use one of "
                + ", ".join(t.__name__ for t in supported)
                + " (or X | None)"
            )
            continue
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        name = field.metadata.get("env") or f"{prefix}_{field.name.upper()}"
        found.append(Variable(name, field.name, kind, required=not (has_default or optional)))
    if problems:
        raise ConfigError(problems)
    return found


def load(config_class: type, prefix: str, environ: Mapping[str, str]) -> Any:
    """An instance of `config_class` from `environ`, or ConfigError naming every problem."""
    found = variables(config_class, prefix)
    for variable in found:
        if variable.kind is str:
            redaction.register_url_credentials(environ.get(variable.name) or "")
    values: dict[str, Any] = {}
    problems = []
    for variable in found:
        text = environ.get(variable.name)
        if text is None or text == "":
            if variable.required:
                state = "is not set" if text is None else "is empty"
                problems.append(
                    f"{variable.name} {state} ({variable.kind.__name__}, required): set it in "
                    "the daemon's environment"
                )
            continue
        try:
            values[variable.field] = _convert(variable.kind, text)
        except ValueError as error:
            shown = " (a secret, not shown)" if variable.kind is Secret else f"={text!r}"
            problems.append(redaction.redact(f"{variable.name}{shown} {error}"))
    if problems:
        raise ConfigError(problems)
    try:
        return config_class(**values)
    except (TypeError, ValueError) as error:  # a __post_init__ check of the author's
        raise ConfigError([redaction.redact(f"Config: {error}")]) from None
