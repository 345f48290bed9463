"""Check nexo-plugin.toml the way the nexo daemon reads it, and say everything wrong at once.

    python3 scripts/nexo_manifest.py [--nexo-version X.Y.Z] [nexo-plugin.toml ...]

One file, two roles: the `nexo-manifest` pre-commit hook of nexo-python-template (hooks/),
and scripts/nexo_manifest.py in every generated plugin, where scripts/pack_tarball.py uses
it. Standard library only (plus tomli on Python 3.10); follows the template.

The model is the daemon's own code (nexo-rs, crate `nexo-plugin-manifest`, daemon 0.1.5):
serde's reading of every table (unknown keys, types, integer ranges, enum values, tables
written as arrays filled by position), the `semver` crate's grammar for `version` and
`min_nexo_version`, the four tiers of `validate::run_all`, and the checks made when the
daemon launches the plugin. The template's tests run it over the daemon's verdicts on 2,000
manifests and agree with every one, except where this checker is stricter on purpose: where
the daemon would accept the manifest and the plugin then fail or misbehave (see STRICTER).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the hook's and the plugin's environments install tomli on Python 3.10
    import tomli as tomllib

# The newest daemon this checker knows, and what it checks `min_nexo_version` against.
KNOWN_DAEMON = "0.1.5"
ID_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")  # matched whole, as the daemon's ^...$
SKILL_SLUG = re.compile(r"[a-z0-9-]{1,64}")
# What Rust's str::trim removes (Unicode White_Space); Python's strip() also removes
# U+001C..U+001F, which the daemon keeps.
RUST_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# Where this checker refuses what the daemon accepts, each for a reason a plugin would feel.
STRICTER = {
    "in-tree": "no [plugin.entrypoint].command: the daemon takes the plugin for an in-tree "
    "Rust plugin and never starts it",
    "by-position": "is written as an array: the daemon fills its fields by position and "
    "drops what is left over; write it as a table",
    "nul": "holds a NUL character: the daemon accepts it and then fails to start the plugin",
    "skill-slug": "is not a skill slug (a-z, 0-9 and -, at most 64): the daemon would look "
    "for its SKILL.md outside the plugin's skills/ folder",
}
# Refused by every daemon up to KNOWN_DAEMON, needed by the nexoai SDK to declare tools.
NEWER_CONTRACT = (
    "[plugin.extends] is refused by nexo daemons up to {daemon} (`unknown field extends`); "
    "the nexoai SDK needs it to declare tools, so this plugin needs a daemon that knows "
    "[plugin.extends] (the tool.invoke contract)"
)


class ManifestProblem(Exception):
    """The manifest cannot be used; the message says what is wrong and where."""


# -- the semver crate (1.0.28), as the daemon parses versions and requirements ---------------


class SemverError(ValueError):
    pass


@dataclass(frozen=True)
class Comparator:
    op: str  # "=", ">", ">=", "<", "<=", "~", "^", "*"
    major: int
    minor: int | None
    patch: int | None
    pre: str


_U64_MAX = 2**64 - 1
_OPS = (">=", "<=", "=", ">", "<", "~", "^")


def _number(text: str, position: str) -> tuple[int, str]:
    """A numeric identifier: ASCII digits, no leading zero, within u64."""
    length = 0
    while length < len(text) and "0" <= text[length] <= "9":
        length += 1
    if length == 0:
        if text:
            raise SemverError(f"unexpected character {text[0]!r} while parsing {position}")
        raise SemverError(f"unexpected end of input while parsing {position}")
    if length > 1 and text[0] == "0":
        raise SemverError(f"invalid leading zero in {position}")
    value = int(text[:length])
    if value > _U64_MAX:
        raise SemverError(f"value of {position} exceeds u64::MAX")
    return value, text[length:]


def _dot(text: str, position: str) -> str:
    if text.startswith("."):
        return text[1:]
    if text:
        raise SemverError(f"unexpected character {text[0]!r} after {position}")
    raise SemverError(f"unexpected end of input while parsing {position}")


def _identifier(text: str, position: str) -> tuple[str, str]:
    """Dot-separated [0-9A-Za-z-]+ segments; numeric pre-release segments without a
    leading zero. ("", text) when there is none at all."""
    end, segment_start = 0, 0
    while True:
        char = text[end] if end < len(text) else ""
        if char and (char.isascii() and (char.isalnum() or char == "-")):
            end += 1
            continue
        segment = text[segment_start:end]
        if not segment:
            if end == 0 and char != ".":
                return "", text
            raise SemverError(f"empty identifier segment in {position}")
        numeric = len(segment) > 1 and segment.isdigit()
        if position == "pre-release identifier" and numeric and segment[0] == "0":
            raise SemverError(f"invalid leading zero in {position}")
        if char != ".":
            return text[:end], text[end:]
        end += 1
        segment_start = end


def _tagged(text: str, mark: str, position: str) -> tuple[str, str]:
    """After `mark` ("-" or "+"), a non-empty identifier."""
    if not text.startswith(mark):
        return "", text
    value, rest = _identifier(text[1:], position)
    if not value:
        raise SemverError(f"empty identifier segment in {position}")
    return value, rest


def parse_version(text: str) -> tuple[int, int, int, str]:
    """(major, minor, patch, pre-release) of a strict SemVer version, or SemverError."""
    if not text:
        raise SemverError("empty string, expected a semver version")
    major, rest = _number(text, "major version number")
    minor, rest = _number(_dot(rest, "major version number"), "minor version number")
    patch, rest = _number(_dot(rest, "minor version number"), "patch version number")
    position = "patch version number"
    pre, rest = _tagged(rest, "-", "pre-release identifier")
    position = "pre-release identifier" if pre else position
    build, rest = _tagged(rest, "+", "build metadata")
    position = "build metadata" if build else position
    if rest:
        raise SemverError(f"unexpected character {rest[0]!r} after {position}")
    return major, minor, patch, pre


def _wildcard(text: str) -> str | None:
    """What follows a leading *, x or X; None when there is none."""
    return text[1:] if text[:1] in ("*", "x", "X") else None


def _comparator(text: str) -> tuple[Comparator, str, str]:
    op = next((candidate for candidate in _OPS if text.startswith(candidate)), "")
    text = text[len(op) :].lstrip(" ")
    position = "major version number"
    major, text = _number(text, position)
    minor = patch = None
    wildcard = False
    if text.startswith("."):
        position = "minor version number"
        after = _wildcard(text[1:])
        if after is not None:
            wildcard, text, op = True, after, op or "*"
        else:
            minor, text = _number(text[1:], position)
    if text.startswith("."):
        position = "patch version number"
        after = _wildcard(text[1:])
        if after is not None:
            text, op = after, op or "*"
        elif wildcard:
            raise SemverError("unexpected character after wildcard in version req")
        else:
            patch, text = _number(text[1:], position)
    pre = ""
    if patch is not None:
        pre, text = _tagged(text, "-", "pre-release identifier")
        position = "pre-release identifier" if pre else position
        build, text = _tagged(text, "+", "build metadata")
        position = "build metadata" if build else position
    return Comparator(op or "^", major, minor, patch, pre), position, text.lstrip(" ")


def parse_requirement(text: str) -> list[Comparator]:
    """The comparators of a semver requirement (empty: `*`), or SemverError."""
    text = text.lstrip(" ")
    after = _wildcard(text)
    if after is not None:
        rest = after.lstrip(" ")
        if not rest:
            return []
        if rest.startswith(","):
            raise SemverError(
                f"wildcard req ({text[0]}) must be the only comparator in the version req"
            )
        raise SemverError("unexpected character after wildcard in version req")
    comparators: list[Comparator] = []
    while True:
        try:
            comparator, position, text = _comparator(text)
        except SemverError:
            after = _wildcard(text)
            if after is not None and (not after.lstrip(" ") or after.lstrip(" ").startswith(",")):
                raise SemverError(
                    f"wildcard req ({text[0]}) must be the only comparator in the version req"
                ) from None
            raise
        comparators.append(comparator)
        if not text:
            return comparators
        if not text.startswith(","):
            raise SemverError(f"expected comma after {position}, found {text[0]!r}")
        if len(comparators) == 32:
            raise SemverError("excessive number of version comparators")
        text = text[1:].lstrip(" ")


def _matches(comparator: Comparator, version: tuple[int, int, int]) -> bool:
    """Whether a version without pre-release meets one comparator (semver's matches_impl)."""
    op, wanted = comparator.op, (comparator.major, comparator.minor, comparator.patch)
    known = [(have, want) for have, want in zip(version, wanted, strict=True) if want is not None]
    equal = all(have == want for have, want in known) and not comparator.pre
    first_difference = next(((have, want) for have, want in known if have != want), None)
    if op in ("=", "*"):
        return equal
    if op in (">", ">="):
        greater = (
            (first_difference[0] > first_difference[1])
            if first_difference
            else (len(known) == 3 and bool(comparator.pre))
        )
        return greater or (op == ">=" and equal)
    if op in ("<", "<="):
        less = first_difference is not None and first_difference[0] < first_difference[1]
        return less or (op == "<=" and equal)
    major, minor, patch = version
    if major != comparator.major:
        return False
    if op == "~":
        if comparator.minor is not None and minor != comparator.minor:
            return False
        return comparator.patch is None or patch >= comparator.patch
    if comparator.minor is None:  # ^
        return True
    if comparator.patch is None:
        return minor >= comparator.minor if comparator.major > 0 else minor == comparator.minor
    if comparator.major > 0:
        return (minor, patch) >= (comparator.minor, comparator.patch)
    if comparator.minor > 0:
        return minor == comparator.minor and patch >= comparator.patch
    return (minor, patch) == (comparator.minor, comparator.patch)


def requirement_matches(comparators: list[Comparator], version: str) -> bool:
    major, minor, patch, _ = parse_version(version)
    return all(_matches(comparator, (major, minor, patch)) for comparator in comparators)


# -- the daemon's schema, read as serde reads it ----------------------------------------------


@dataclass
class Reading:
    """What reading the manifest found: problems by kind, and the values read."""

    daemon: list[str] = field(default_factory=list)  # the daemon refuses the manifest
    stricter: list[str] = field(default_factory=list)  # the daemon accepts; the plugin fails
    newer: list[str] = field(default_factory=list)  # needs a newer daemon than KNOWN_DAEMON


Kind = Callable[[Any, str, Reading], Any]  # reads a value at a place: the value, or None


def _scalar(python: type, wanted: str) -> Kind:
    def read(value: Any, where: str, reading: Reading) -> Any:
        if isinstance(value, python) and (python is not int or not isinstance(value, bool)):
            return value
        reading.daemon.append(f"{where} = {_shown(value)} must be {wanted}")
        return None

    return read


def _integer(bits: int, rust: str) -> Kind:
    def read(value: Any, where: str, reading: Reading) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**bits:
            return value
        reading.daemon.append(
            f"{where} = {_shown(value)} must be a whole number from 0 to {2**bits - 1} "
            f"(the daemon reads a {rust})"
        )
        return None

    return read


def _parsed(parse: Callable[[str], Any], wanted: str) -> Kind:
    def read(value: Any, where: str, reading: Reading) -> Any:
        if not isinstance(value, str):
            reading.daemon.append(f"{where} = {_shown(value)} must be {wanted} in a string")
            return None
        try:
            parse(value)
        except SemverError as error:
            reading.daemon.append(f"{where} = {_shown(value)} is not {wanted}: {error}")
            return None
        return value

    return read


def _list_of(item: Kind) -> Kind:
    def read(value: Any, where: str, reading: Reading) -> Any:
        if not isinstance(value, list):
            reading.daemon.append(f"{where} must be an array")
            return None
        return [item(element, f"{where}[{index}]", reading) for index, element in enumerate(value)]

    return read


def _map_of(item: Kind) -> Kind:
    def read(value: Any, where: str, reading: Reading) -> Any:
        if not isinstance(value, dict):
            reading.daemon.append(f"{where} must be a table")
            return None
        return {key: item(element, _at(where, key), reading) for key, element in value.items()}

    return read


def _one_of(*names: str) -> Kind:
    def read(value: Any, where: str, reading: Reading) -> Any:
        if isinstance(value, str) and value in names:
            return value
        reading.daemon.append(f"{where} = {_shown(value)} must be one of {', '.join(names)}")
        return None

    return read


STRING = _scalar(str, "a string")
BOOL = _scalar(bool, "true or false")
STRINGS = _list_of(STRING)
VERSION = _parsed(parse_version, "a semantic version like 1.2.3")
REQUIREMENT = _parsed(parse_requirement, 'a semver requirement like ">=0.1.0"')


@dataclass(frozen=True)
class Field:
    key: str
    kind: Kind
    default: Any = ...  # ... : required


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class Table:
    """A serde struct with deny_unknown_fields: a TOML table, or an array read by position."""

    def __init__(self, *fields: Field) -> None:
        self.fields = fields

    def __call__(self, value: Any, where: str, reading: Reading) -> Any:
        if isinstance(value, list):  # serde fills the fields in order, drops the rest
            reading.stricter.append(f"[{where}] {STRICTER['by-position']}")
            value = dict(zip((f.key for f in self.fields), value, strict=False))
            positional = True
        elif isinstance(value, dict):
            positional = False
            known = [f.key for f in self.fields]
            for key in value:
                if key not in known:
                    reading.daemon.append(
                        f"unknown key {key!r} {f'in [{where}]' if where else 'at the top level'}: "
                        f"the daemon refuses the manifest; allowed: {', '.join(known)}"
                    )
        else:
            reading.daemon.append(f"[{where}] must be a table, not {_shown(value)}")
            return None
        read: dict[str, Any] = {}
        for index, spec in enumerate(self.fields):
            if spec.key in value:
                read[spec.key] = spec.kind(value[spec.key], _at(where, spec.key), reading)
            elif spec.default is not ...:
                read[spec.key] = spec.default
            else:
                missing = f"element {index} ({spec.key})" if positional else f"{spec.key!r}"
                reading.daemon.append(f"[{where}] is missing {missing}")
                read[spec.key] = None
        return read


def _optional(key: str, kind: Kind) -> Field:
    return Field(key, kind, None)


def _strings(key: str) -> Field:
    return Field(key, STRINGS, [])


CHANNEL = Table(Field("kind", STRING), Field("adapter", STRING))
GATE = Table(
    Field("extension", STRING),
    Field("env_var", STRING),
    Field("kind", _one_of("Boolean", "CargoFeature", "Allowlist")),
    Field("risk", _one_of("Low", "Medium", "High", "Critical")),
    Field("effect", STRING),
    _optional("hint", STRING),
)
UI_HINT = Table(
    _optional("label", STRING),
    _optional("help", STRING),
    _strings("tags"),
    Field("advanced", BOOL, False),
    Field("sensitive", BOOL, False),
    _optional("placeholder", STRING),
)
CAPABILITIES = (
    "tools", "advisors", "agents", "skills", "channels", "hooks", "mcp_servers", "webhooks",
    "poller_drivers", "llm_providers",
)  # fmt: skip
HTTP_SERVER = Table(
    Field("port", _integer(16, "u16")),
    Field("bind", STRING, "127.0.0.1"),
    Field("token_env", STRING),
    Field("health_path", STRING, "/healthz"),
)
# [plugin]'s fields in the daemon's order (an array is read by position), with defaults.
PLUGIN = Table(
    Field("id", STRING),
    Field("version", VERSION),
    Field("name", STRING),
    Field("description", STRING),
    Field("min_nexo_version", REQUIREMENT),
    Field("enabled_by_default", BOOL, False),
    Field("capabilities", Table(
        Field("provides", _list_of(_one_of(*CAPABILITIES)), []),
        Field("admin", Table(_strings("required"), _strings("optional")), {}),
        _optional("http_server", HTTP_SERVER),
        _strings("skills"),
    ), {}),
    Field("tools", Table(_strings("expose"), _strings("deferred")), {}),
    Field("advisors", Table(_strings("register")), {}),
    Field("agents", Table(
        _optional("contributes_dir", STRING), Field("allow_override", BOOL, False)
    ), {}),
    Field("channels", Table(Field("register", _list_of(CHANNEL), [])), {}),
    Field("skills", Table(_optional("contributes_dir", STRING)), {}),
    Field("config", Table(_optional("schema_path", STRING), Field("hot_reload", BOOL, True)), {}),
    Field("requires", Table(
        _strings("bins"), _strings("env"), _strings("features"), _strings("nexo_capabilities")
    ), {}),
    Field("capability_gates", Table(Field("gate", _list_of(GATE), [])), {}),
    Field("ui", Table(Field("fields", _map_of(UI_HINT), {})), {}),
    Field("contracts", Table(_strings("provides"), _strings("consumes")), {}),
    Field("meta", Table(
        _optional("author", STRING), _optional("license", STRING),
        _optional("homepage", STRING), _optional("repository", STRING),
    ), {}),
    Field("entrypoint", Table(
        _optional("command", STRING), _strings("args"), Field("env", _map_of(STRING), {})
    ), {}),
    Field("supervisor", Table(
        Field("respawn", BOOL, False),
        Field("max_attempts", _integer(32, "u32"), 3),
        Field("backoff_ms", _integer(64, "u64"), 1000),
        Field("stderr_tail_lines", _integer(64, "usize"), 32),
    ), {}),
)  # fmt: skip
MANIFEST = Table(Field("plugin", PLUGIN))
EXTENDS = Table(_strings("tools"))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _blank(text: str | None) -> bool:
    return text is None or not text.strip(RUST_WHITESPACE)


# -- the daemon's checks after reading (validate::run_all), and when it launches the plugin ---


def _run_all(plugin: dict[str, Any], daemon_version: str, found: list[str]) -> None:
    plugin_id = plugin["id"]
    if isinstance(plugin_id, str) and not ID_PATTERN.fullmatch(plugin_id):
        found.append(f"plugin.id {plugin_id!r} must match ^{ID_PATTERN.pattern}$")
    for key in ("name", "description"):
        if isinstance(plugin[key], str) and _blank(plugin[key]):
            found.append(f"plugin.{key} must not be empty")
    requirement = plugin["min_nexo_version"]
    if requirement is not None and not requirement_matches(
        parse_requirement(requirement), daemon_version
    ):
        found.append(
            f"plugin.min_nexo_version {requirement!r} is not met by nexo {daemon_version}, the "
            f"daemon checked against: the daemon refuses the plugin at start "
            f"(check against another with --nexo-version)"
        )
    tools = plugin["tools"] or {}
    expose = [name for name in tools.get("expose") or [] if isinstance(name, str)]
    if isinstance(plugin_id, str):
        found += [
            f"tool {name!r} in plugin.tools.expose must start with {plugin_id + '_'!r}"
            for name in expose
            if not name.startswith(plugin_id + "_")
        ]
    found += [
        f"tool {name!r} in plugin.tools.deferred is not in plugin.tools.expose"
        for name in tools.get("deferred") or []
        if isinstance(name, str) and name not in expose
    ]
    for section, key in (("agents", "contributes_dir"), ("skills", "contributes_dir"),
                         ("config", "schema_path")):  # fmt: skip
        path = (plugin[section] or {}).get(key)
        if not isinstance(path, str):
            continue
        if path.startswith("/") or ":\\" in path:
            found.append(f"plugin.{section}.{key} {path!r} must be relative to the plugin folder")
        elif ".." in re.split(r"[/\\]", path):
            found.append(f"plugin.{section}.{key} {path!r} must not contain '..'")
    for index, channel in enumerate((plugin["channels"] or {}).get("register") or []):
        kind = (channel or {}).get("kind")
        if isinstance(kind, str) and not ID_PATTERN.fullmatch(kind):
            found.append(f"plugin.channels.register[{index}].kind {kind!r} must match "
                         f"^{ID_PATTERN.pattern}$")  # fmt: skip
    found += _capabilities_without_sections(plugin)
    seen: set[str] = set()
    for gate in (plugin["capability_gates"] or {}).get("gate") or []:
        env_var = (gate or {}).get("env_var")
        if isinstance(env_var, str):
            if env_var in seen:
                found.append(f"capability gate env_var {env_var!r} is declared twice")
            seen.add(env_var)
    tail = (plugin["supervisor"] or {}).get("stderr_tail_lines")
    if isinstance(tail, int) and tail > 512:
        found.append(f"plugin.supervisor.stderr_tail_lines = {tail} must be at most 512")


def _capabilities_without_sections(plugin: dict[str, Any]) -> list[str]:
    def section(name: str) -> dict[str, Any]:
        return plugin[name] or {}

    populated = {
        "tools": ("[plugin.tools] expose", bool(section("tools").get("expose"))),
        "advisors": ("[plugin.advisors] register", bool(section("advisors").get("register"))),
        "agents": ("[plugin.agents] contributes_dir",
                   section("agents").get("contributes_dir") is not None),
        "skills": ("[plugin.skills] contributes_dir",
                   section("skills").get("contributes_dir") is not None),
        "channels": ("[[plugin.channels.register]]", bool(section("channels").get("register"))),
    }  # fmt: skip
    provides = section("capabilities").get("provides") or []
    return [
        f"capability {capability!r} in plugin.capabilities.provides needs "
        f"{populated[capability][0]}"
        for capability in provides
        if capability in populated and not populated[capability][1]
    ]


def _launch(plugin: dict[str, Any], reading: Reading) -> None:
    entrypoint = plugin["entrypoint"]
    if entrypoint is None:  # not readable: said already
        return
    command = entrypoint.get("command")
    if command is None:
        reading.stricter.append(STRICTER["in-tree"])
    elif _blank(command):
        reading.daemon.append(
            "plugin.entrypoint.command is blank: the daemon never starts the plugin"
        )
    env = entrypoint.get("env") or {}
    if command is not None:  # the daemon checks the environment of what it launches
        reading.daemon += [
            f"plugin.entrypoint.env key {key!r}: keys starting with NEXO_ are the daemon's"
            for key in env
            if key.startswith("NEXO_")
        ]
    texts = [("plugin.entrypoint.command", command)]
    texts += [
        (f"plugin.entrypoint.args[{i}]", a) for i, a in enumerate(entrypoint.get("args") or [])
    ]
    texts += [(f"plugin.entrypoint.env.{key}", f"{key}={value}") for key, value in env.items()]
    reading.stricter += [
        f"{where} {STRICTER['nul']}"
        for where, text in texts
        if isinstance(text, str) and "\0" in text
    ]
    for index, slug in enumerate((plugin["capabilities"] or {}).get("skills") or []):
        if isinstance(slug, str) and not SKILL_SLUG.fullmatch(slug):
            reading.stricter.append(
                f"plugin.capabilities.skills[{index}] {slug!r} {STRICTER['skill-slug']}"
            )


def read(manifest: dict[str, Any], daemon_version: str = KNOWN_DAEMON) -> Reading:
    """Everything the daemon `daemon_version` (and this checker) would say of `manifest`."""
    reading = Reading()
    top = manifest.get("plugin")
    extends = top.get("extends") if isinstance(top, dict) else None
    if extends is not None:  # read apart: the newer contract the SDK follows
        reading.newer.append(NEWER_CONTRACT.format(daemon=KNOWN_DAEMON))
        top = {key: value for key, value in top.items() if key != "extends"}  # type: ignore[union-attr]
    plugin = (MANIFEST({**manifest, "plugin": top}, "", reading) or {}).get("plugin")
    if not plugin:
        return reading
    _run_all(plugin, daemon_version, reading.daemon)
    _launch(plugin, reading)
    tools = EXTENDS(extends, "plugin.extends", reading) if extends is not None else None
    if tools and isinstance(plugin["id"], str):
        reading.daemon += [
            f"tool {name!r} in plugin.extends.tools must start with {plugin['id'] + '_'!r}"
            for name in tools["tools"] or []
            if isinstance(name, str) and not name.startswith(plugin["id"] + "_")
        ]
    return reading


def problems(manifest: dict[str, Any], daemon_version: str = KNOWN_DAEMON) -> list[str]:
    """Every reason the daemon, or this checker, refuses `manifest`."""
    reading = read(manifest, daemon_version)
    return reading.daemon + reading.stricter


# -- files -------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """A TOML file as the daemon's parser reads it: UTF-8 with an optional BOM, line endings
    as written (a lone carriage return is not one)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestProblem(f"{path}: cannot read the manifest: {error.strerror}") from None
    return parse(data, str(path))


def parse(data: bytes, name: str) -> dict[str, Any]:
    """A TOML document from its bytes; ManifestProblem naming `name` when it is not one."""
    try:
        document: dict[str, Any] = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ManifestProblem(f"{name}: not UTF-8: {error.reason} at byte {error.start}") from None
    except tomllib.TOMLDecodeError as error:
        raise ManifestProblem(f"{name}: not valid TOML: {error}") from None
    return document


def load_valid(path: Path, daemon_version: str = KNOWN_DAEMON) -> dict[str, Any]:
    """The manifest at `path`, or ManifestProblem listing everything wrong with it."""
    manifest = load(path)
    found = problems(manifest, daemon_version)
    if found:
        raise ManifestProblem(f"{path}:\n" + "\n".join(f"  - {problem}" for problem in found))
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    daemon_version = KNOWN_DAEMON
    if "--nexo-version" in args:
        at = args.index("--nexo-version")
        daemon_version = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
        try:
            if parse_version(daemon_version)[3]:
                raise SemverError("a release version, without a pre-release part")
        except SemverError as error:
            print(f"--nexo-version {daemon_version!r}: {error}", file=sys.stderr)
            return 2
    failed = False
    for path in [Path(arg) for arg in args] or [Path("nexo-plugin.toml")]:
        try:
            manifest = load(path)
        except ManifestProblem as problem:
            print(problem, file=sys.stderr)
            failed = True
            continue
        reading = read(manifest, daemon_version)
        for note in reading.newer:
            print(f"{path}: note: {note}", file=sys.stderr)
        found = reading.daemon + reading.stricter
        if found:
            print(f"{path}:\n" + "\n".join(f"  - {line}" for line in found), file=sys.stderr)
            failed = True
            continue
        plugin = manifest["plugin"]
        print(
            f"{path}: {plugin['id']} {plugin['version']} follows the rules of nexo {daemon_version}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
