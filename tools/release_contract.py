"""The template's contract with generated plugins, and whether the tree breaks it.

    python3 dev.py contract            check the tree against the last release's contract
    python3 dev.py contract --record   at a release: record the tree's contract for the
                                       version atop CHANGELOG.md

What plugins rely on (README, "Releases of this template"): the names in
`nexo_plugin_runtime.__all__`, `nexo_plugin_runtime.testing.__all__` and
`nexo_plugin_runtime.devhost.__all__`, the pytest fixtures the runtime gives plugins' tests
(`host`, `ready`, ...), the questions and their choices (`--data` keys and answers files),
the author's files (`_skip_if_exists`), and the minimum Python, copier and nexo daemon
versions. tools/released_contract.json holds them as of the last release. Removing any of
them, or raising a minimum, is breaking: the section atop CHANGELOG.md must then name the
next major version (`## Unreleased (2.0.0)` or `## 2.0.0 (date)`).
tests/test_release_contract.py runs the check.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path("tools") / "released_contract.json"
RUNTIME = Path("template") / "runtime" / "src" / "nexo_plugin_runtime"
# A release heading: "## 1.2.0 (2026-12-02)"; the next one: "## Unreleased (2.0.0)".
HEADING = re.compile(
    r"^## (?:Unreleased \((\d+\.\d+\.\d+)\)|(\d+\.\d+\.\d+)\b.*|Unreleased)$", re.M
)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def public_names(module: Path) -> list[str]:
    """The `__all__` of a module, read without importing it."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return sorted(ast.literal_eval(node.value))
    raise ValueError(f"{module}: no __all__")


def fixture_names(module: Path) -> list[str]:
    """The pytest fixtures a module defines (`@pytest.fixture`, with or without arguments)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))

    def is_fixture(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(target, ast.Attribute) and target.attr == "fixture"

    return sorted(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(map(is_fixture, node.decorator_list))
    )


def choice_values(choices: list[Any] | dict[str, Any]) -> list[str]:
    """The answers a question takes: a list's items, or a {label: value} mapping's values."""
    return sorted(
        str(value) for value in (choices.values() if isinstance(choices, dict) else choices)
    )


def contract(root: Path) -> dict[str, Any]:
    """What generated plugins rely on, as the tree at `root` has it."""
    questions = yaml.safe_load((root / "copier.yml").read_text(encoding="utf-8"))
    asked = {
        name: choice_values(spec.get("choices", []))
        for name, spec in questions.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }
    manifest = (root / "template" / "nexo-plugin.toml.jinja").read_text(encoding="utf-8")
    nexo = re.search(r'^min_nexo_version = ">=([0-9.]+)"$', manifest, re.M)
    if nexo is None:
        raise ValueError("template/nexo-plugin.toml.jinja: no min_nexo_version >= X.Y.Z")
    return {
        "runtime": public_names(root / RUNTIME / "__init__.py"),
        "testing": public_names(root / RUNTIME / "testing" / "__init__.py"),
        "devhost": public_names(root / RUNTIME / "devhost" / "__init__.py"),
        "fixtures": fixture_names(root / RUNTIME / "testing" / "fixtures.py"),
        "questions": asked,
        "authors_files": sorted(questions["_skip_if_exists"]),
        "minimums": {
            "python": min(questions["python_min"]["choices"], key=version_tuple),
            "copier": questions["_min_copier_version"],
            "nexo": nexo.group(1),
        },
    }


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What `new` takes away from what plugins had in `old`."""
    found = [
        f"{name!r} is gone from {where}"
        for key, where in (
            ("runtime", "nexo_plugin_runtime.__all__"),
            ("testing", "nexo_plugin_runtime.testing.__all__"),
            ("devhost", "nexo_plugin_runtime.devhost.__all__"),
            ("fixtures", "the pytest fixtures plugins' tests use"),
            ("authors_files", "the author's files (_skip_if_exists)"),
        )
        for name in old.get(key, [])  # a release before a part existed promised none of it
        if name not in new[key]
    ]
    for question, choices in old["questions"].items():
        if question not in new["questions"]:
            found.append(f"the question {question!r} is gone (answers files and --data use it)")
            continue
        kept = new["questions"][question]
        found += [
            f"{choice!r} is no longer a choice of {question!r}"
            for choice in choices
            if kept and choice not in kept
        ]
        if choices == [] and kept:
            found.append(f"{question!r} now takes only {', '.join(kept)}")
    found += [
        f"the minimum {what} went from {old['minimums'][what]} to {new['minimums'][what]}"
        for what in old["minimums"]
        if version_tuple(new["minimums"][what]) > version_tuple(old["minimums"][what])
    ]
    return found


def next_version(changelog: str) -> str | None:
    """The version the section atop CHANGELOG.md names, or None ("## Unreleased")."""
    found = HEADING.search(changelog)
    if found is None:
        raise ValueError("CHANGELOG.md has no section (## 1.2.3 ... or ## Unreleased)")
    return found.group(1) or found.group(2)


def check(root: Path) -> list[str]:
    """Why the tree at `root` cannot be released as the version CHANGELOG.md names."""
    recorded = json.loads((root / RECORD).read_text(encoding="utf-8"))
    released, old = recorded["version"], recorded["contract"]
    breaking = breaking_changes(old, contract(root))
    upcoming = next_version((root / "CHANGELOG.md").read_text(encoding="utf-8"))
    major = version_tuple(released)[0] + 1
    if not breaking or (upcoming and version_tuple(upcoming)[0] >= major):
        return []
    return [
        *(f"breaking since {released}: {change}" for change in breaking),
        f"so the next release is {major}.0.0: name it atop CHANGELOG.md "
        f"(`## Unreleased ({major}.0.0)`) with an Upgrading note for each, or put back "
        "what plugins rely on",
    ]


def record(root: Path) -> str:
    version = next_version((root / "CHANGELOG.md").read_text(encoding="utf-8"))
    if version is None:
        raise ValueError("name the release atop CHANGELOG.md (## X.Y.Z (date)) first")
    document = {"version": version, "contract": contract(root)}
    (root / RECORD).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return version


def main(argv: list[str]) -> int:
    if argv == ["--record"]:
        print(f"recorded the contract of {record(ROOT)} in {RECORD}")
        return 0
    problems = check(ROOT)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("the tree keeps the last release's contract, or says it breaks it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
