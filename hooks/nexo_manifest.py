"""Load nexo-plugin.toml and check it the way the nexo daemon and installer do.

    python3 scripts/nexo_manifest.py [nexo-plugin.toml ...]   # each problem, exit 1 if any

One file, two roles: the `nexo-manifest` pre-commit hook of nexo-python-template (hooks/),
and scripts/nexo_manifest.py in every generated plugin, where scripts/pack_tarball.py uses
it. Standard library only (plus tomli on Python 3.10); follows the template.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the hook's and the plugin's environments install tomli on Python 3.10
    import tomli as tomllib

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Semantic Versioning 2.0.0, without a leading "v".
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# One comparator of a semver requirement (">=0.1.0", "^1.2", "~0.3", "=1.0.0", "*").
REQUIREMENT_PART = re.compile(
    r"^(?:>=|<=|[=<>~^])?\s*(?:\d+|\*)(?:\.(?:\d+|[*xX])){0,2}(?:-[0-9A-Za-z.-]+)?$"
)
# The daemon's manifest schema (every table deny_unknown_fields). The tables not listed
# here (capabilities, advisors, agents, skills, capability_gates, ui, contracts) are accepted
# as the daemon accepts them; their insides are not checked here.
KNOWN_KEYS: dict[str, set[str]] = {
    "": {"plugin"},
    "plugin": {
        "id", "version", "name", "description", "min_nexo_version", "enabled_by_default",
        "entrypoint", "requires", "channels", "meta", "supervisor", "tools", "extends",
        "capabilities", "advisors", "agents", "skills", "config", "capability_gates", "ui",
        "contracts",
    },
    "plugin.config": {"schema_path", "hot_reload"},
    "plugin.entrypoint": {"command", "args", "env"},
    "plugin.requires": {"bins", "env", "features", "nexo_capabilities"},
    "plugin.channels": {"register"},
    "plugin.channels.register": {"kind", "adapter"},
    "plugin.meta": {"author", "license", "homepage", "repository"},
    "plugin.supervisor": {"respawn", "max_attempts", "backoff_ms", "stderr_tail_lines"},
    "plugin.tools": {"expose"},
    "plugin.extends": {"tools"},
}  # fmt: skip


class ManifestProblem(Exception):
    """The manifest cannot be used; the message says what is wrong and where."""


def load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestProblem(f"{path}: cannot read the manifest: {error.strerror}") from None
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestProblem(f"{path}: not valid TOML: {error}") from None
    return document


def _unknown_keys(table: Any, where: str) -> list[str]:
    if not isinstance(table, dict):
        return [f"[{where}] must be a table"]
    allowed = KNOWN_KEYS[where]
    return [
        f"unknown key {key!r} in [{where or 'top level'}]: the daemon rejects the manifest; "
        f"allowed: {', '.join(sorted(allowed))}"
        for key in table
        if key not in allowed
    ]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _count(maximum: int | None) -> Any:
    """A check: an int (not a bool) from 0 to `maximum`."""
    return lambda value: (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
        and (maximum is None or value <= maximum)
    )  # fmt: skip


def _typed(plugin: dict[str, Any], table: str, checks: dict[str, Any]) -> list[str]:
    """Unknown keys and ill-typed values of [plugin.<table>]."""
    section = plugin.get(table, {})
    found = _unknown_keys(section, f"plugin.{table}")
    if isinstance(section, dict):
        found += [
            f"plugin.{table}.{key} = {section[key]!r} must be {wanted}"
            for key, (check, wanted) in checks.items()
            if key in section and not check(section[key])
        ]
    return found


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def problems(manifest: dict[str, Any]) -> list[str]:
    """Every rule of the daemon's manifest parser that this manifest breaks."""
    found = _unknown_keys(manifest, "")
    plugin = manifest.get("plugin")
    if not isinstance(plugin, dict):
        return [*found, "missing the [plugin] table"]
    found += _unknown_keys(plugin, "plugin")

    plugin_id = plugin.get("id")
    if not isinstance(plugin_id, str) or not ID_PATTERN.fullmatch(plugin_id):
        found.append(f"plugin.id {plugin_id!r} must match {ID_PATTERN.pattern}")
        plugin_id = None
    version = plugin.get("version")
    if not isinstance(version, str) or not SEMVER.fullmatch(version):
        found.append(
            f"plugin.version {version!r} is not a semantic version like 1.2.3 (no leading 'v')"
        )
    for key in ("name", "description"):
        if not isinstance(plugin.get(key), str) or not plugin[key].strip():
            found.append(f"plugin.{key} must be a non-empty string")
    requirement = plugin.get("min_nexo_version")
    if not isinstance(requirement, str) or not all(
        REQUIREMENT_PART.fullmatch(part.strip()) for part in requirement.split(",")
    ):
        found.append(
            f'plugin.min_nexo_version {requirement!r} is not a semver requirement like ">=0.1.0"'
        )
    if "enabled_by_default" in plugin and not isinstance(plugin["enabled_by_default"], bool):
        found.append("plugin.enabled_by_default must be true or false")

    entrypoint = plugin.get("entrypoint", {})
    found += _unknown_keys(entrypoint, "plugin.entrypoint")
    if isinstance(entrypoint, dict):
        if not isinstance(entrypoint.get("command"), str) or not entrypoint["command"]:
            found.append("plugin.entrypoint.command must be a non-empty string")
        if "args" in entrypoint and not _string_list(entrypoint["args"]):
            found.append("plugin.entrypoint.args must be a list of strings")
        env = entrypoint.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            found.append("plugin.entrypoint.env must be a table of strings")
        else:
            found += [
                f"plugin.entrypoint.env key {key!r}: keys starting with NEXO_ are reserved"
                for key in env
                if key.upper().startswith("NEXO_")
            ]

    requires = plugin.get("requires", {})
    found += _unknown_keys(requires, "plugin.requires")
    if isinstance(requires, dict):
        found += [
            f"plugin.requires.{key} must be a list of strings"
            for key, value in requires.items()
            if not _string_list(value)
        ]

    channels = plugin.get("channels", {})
    found += _unknown_keys(channels, "plugin.channels")
    registered = channels.get("register", []) if isinstance(channels, dict) else []
    if not isinstance(registered, list):
        found.append("[[plugin.channels.register]] must be an array of tables")
        registered = []
    for index, channel in enumerate(registered):
        where = f"plugin.channels.register[{index}]"
        found += [
            problem.replace("[plugin.channels.register]", f"[{where}]")
            for problem in _unknown_keys(channel, "plugin.channels.register")
        ]
        if not isinstance(channel, dict):
            continue
        kind = channel.get("kind")
        if not isinstance(kind, str) or not ID_PATTERN.fullmatch(kind):
            found.append(f"{where}.kind {kind!r} must match {ID_PATTERN.pattern}")
        if not isinstance(channel.get("adapter"), str) or not channel["adapter"]:
            found.append(f"{where}.adapter must be a non-empty string")

    meta = plugin.get("meta", {})
    found += _unknown_keys(meta, "plugin.meta")
    if isinstance(meta, dict):
        found += [f"plugin.meta.{key} must be a string" for key, value in meta.items()
                  if not isinstance(value, str)]  # fmt: skip
    found += _typed(plugin, "supervisor", {
        "respawn": (_is_bool, "true or false"),
        "max_attempts": (_count(None), "a whole number of at least 0"),
        "backoff_ms": (_count(None), "a whole number of milliseconds"),
        "stderr_tail_lines": (_count(512), "a whole number from 0 to 512"),
    })  # fmt: skip
    found += _typed(plugin, "config", {
        "schema_path": (lambda value: isinstance(value, str) and bool(value), "a path"),
        "hot_reload": (_is_bool, "true or false"),
    })  # fmt: skip

    for table, key in (("tools", "expose"), ("extends", "tools")):
        section = plugin.get(table, {})
        found += _unknown_keys(section, f"plugin.{table}")
        names = section.get(key, []) if isinstance(section, dict) else []
        if not _string_list(names):
            found.append(f"plugin.{table}.{key} must be a list of strings")
        elif plugin_id:
            found += [
                f"tool {name!r} in plugin.{table}.{key} must start with {plugin_id + '_'!r}"
                for name in names
                if not name.startswith(plugin_id + "_")
            ]
    return found


def load_valid(path: Path) -> dict[str, Any]:
    """The manifest at `path`, or ManifestProblem listing everything wrong with it."""
    manifest = load(path)
    found = problems(manifest)
    if found:
        raise ManifestProblem(f"{path}:\n" + "\n".join(f"  - {problem}" for problem in found))
    return manifest


def main(argv: list[str] | None = None) -> int:
    paths = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    failed = False
    for path in paths or [Path("nexo-plugin.toml")]:
        try:
            plugin = load_valid(path)["plugin"]
        except ManifestProblem as problem:
            print(problem, file=sys.stderr)
            failed = True
            continue
        print(f"{path}: {plugin['id']} {plugin['version']} follows the daemon's manifest rules")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
