"""The offline workflow linters, as every test that lints GitHub files runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rendering import BIN


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]], capture_output=True, text=True, timeout=120
    )


def zizmor(github_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("zizmor", "--offline", "--persona=pedantic", "--no-progress", str(github_dir))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = str(BIN / "shellcheck")
    return run_tool("actionlint", "-no-color", "-shellcheck", shellcheck, *map(str, files))


def check_schema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("check-jsonschema", "--builtin-schema", schema, *map(str, files))


def assert_clean(github_dir: Path) -> None:
    """zizmor (pedantic), actionlint with shellcheck and the JSON schemas (the workflows',
    Dependabot's, and Renovate's for a renovate.json beside .github/) all pass."""
    found = zizmor(github_dir)
    assert found.returncode == 0, found.stdout + found.stderr
    assert "No findings" in found.stdout, found.stdout
    workflows = sorted((github_dir / "workflows").glob("*.yml"))
    linted = actionlint(*workflows)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout == "", linted.stdout
    renovate = [path for path in [github_dir.parent / "renovate.json"] if path.exists()]
    for schema, files in (
        ("vendor.github-workflows", workflows),
        ("vendor.dependabot", [github_dir / "dependabot.yml"]),
        ("vendor.renovate", renovate),
    ):
        if not files:
            continue
        checked = check_schema(schema, *files)
        assert checked.returncode == 0, checked.stdout + checked.stderr
