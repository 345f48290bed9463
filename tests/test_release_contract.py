"""Releases keep their word: tools/release_contract.py fails when the tree takes away what
plugins rely on (an author API name, a question or a choice, an author's file, a raised
minimum) while CHANGELOG.md does not name the next major version, and passes otherwise."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rendering import TEMPLATE_ROOT

RUNTIME = "template/runtime/src/nexo_plugin_runtime"
# What the check reads, and the check itself: a tree of its own for each test.
READ = [
    "copier.yml",
    "CHANGELOG.md",
    "template/nexo-plugin.toml.jinja",
    f"{RUNTIME}/__init__.py",
    f"{RUNTIME}/testing/__init__.py",
    f"{RUNTIME}/testing/fixtures.py",
    f"{RUNTIME}/devhost/__init__.py",
    "tools/released_contract.json",
    "tools/release_contract.py",
]


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "tools/release_contract.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )


def tree(tmp_path: Path) -> Path:
    for name in READ:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def next_release(root: Path, version: str) -> None:
    """Name the next release atop the changelog, as its author does."""
    changelog = root / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    first = re.search(r"^## ", text, re.M)
    assert first
    changelog.write_text(
        f"{text[: first.start()]}## Unreleased ({version})\n\n{text[first.start() :]}"
    )


def test_the_tree_keeps_the_last_release_s_contract() -> None:
    run = check(TEMPLATE_ROOT)
    assert run.returncode == 0, run.stderr


BREAKING: dict[str, tuple[Callable[[Path], None], str]] = {
    "author-api-name": (
        lambda root: edit(root / f"{RUNTIME}/__init__.py", '    "Secret",\n', ""),
        "'Secret' is gone from nexo_plugin_runtime.__all__",
    ),
    "testing-name": (
        lambda root: edit(root / f"{RUNTIME}/testing/__init__.py", '    "PluginHost",\n', ""),
        "'PluginHost' is gone from nexo_plugin_runtime.testing.__all__",
    ),
    "fixture": (
        lambda root: edit(root / f"{RUNTIME}/testing/fixtures.py", "def ready(", "def prepared("),
        "'ready' is gone from the pytest fixtures",
    ),
    "question-renamed": (
        lambda root: edit(root / "copier.yml", "\nauthor_email:\n", "\nemail:\n"),
        "the question 'author_email' is gone",
    ),
    "choice-removed": (
        lambda root: edit(root / "copier.yml", "    - BSD-3-Clause\n", ""),
        "'BSD-3-Clause' is no longer a choice of 'license'",
    ),
    "python-raised": (
        lambda root: edit(root / "copier.yml", '    - "3.10"\n', ""),
        "the minimum python went from 3.10 to 3.11",
    ),
    "copier-raised": (
        lambda root: edit(root / "copier.yml", '_min_copier_version: "9.8.0"', '_min_copier_version: "9.9.0"'),
        "the minimum copier went from 9.8.0 to 9.9.0",
    ),
    "nexo-raised": (
        lambda root: edit(root / "template/nexo-plugin.toml.jinja", '">=0.1.0"', '">=0.2.0"'),
        "the minimum nexo went from 0.1.0 to 0.2.0",
    ),
    "author-file": (
        lambda root: edit(root / "copier.yml", "  - tests/conftest.py\n", ""),
        "'tests/conftest.py' is gone from the author's files",
    ),
}  # fmt: skip


@pytest.mark.parametrize("change", BREAKING)
def test_a_breaking_change_needs_the_next_major_version(tmp_path: Path, change: str) -> None:
    root = tree(tmp_path)
    spoil, said = BREAKING[change]
    spoil(root)
    run = check(root)
    assert run.returncode == 1
    assert f"breaking since 1.0.0: {said}" in run.stderr
    assert "so the next release is 2.0.0: name it atop CHANGELOG.md" in run.stderr
    next_release(root, "1.1.0")  # a minor release does not do
    assert check(root).returncode == 1
    next_release(root, "2.0.0")
    assert check(root).returncode == 0


def test_what_adds_to_the_contract_is_no_major(tmp_path: Path) -> None:
    root = tree(tmp_path)
    edit(root / f"{RUNTIME}/__init__.py", '    "Secret",\n', '    "Secret",\n    "Something",\n')
    with (root / "copier.yml").open("a", encoding="utf-8") as questions:
        questions.write('\nsupport_url:\n  type: str\n  default: "https://example.com"\n')
    edit(root / "copier.yml", '    - "3.13"\n', '    - "3.13"\n    - "3.14"\n')
    run = check(root)
    assert run.returncode == 0, run.stderr
