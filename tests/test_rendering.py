"""What rendering changes, for every combination of capabilities: the files, the manifest,
pyproject.toml, the composed handlers.py, the README's layout table, the runtime copied
verbatim, and lint-clean code. Nothing here runs a plugin (tests/test_projects.py does)."""

from __future__ import annotations

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from git_repos import git
from projects import CAPABILITIES, Project
from rendering import BIN, TEMPLATE_ROOT, read_toml, render, runtime_pins

RUNTIME = TEMPLATE_ROOT / "template" / "runtime"
# What each capability adds: its settings without a default (what the daemon must set),
# its handlers, its tests.
REQUIRED = {
    "webhook": ["WEBHOOK_SECRET"],
    "poller": ["FEED_URL"],
    "outbound": ["DELIVERY_URL"],
    "tools": ["LLM_PROVIDER", "LLM_MODEL"],
}
HOOKS = {
    "webhook": {"on_start", "on_webhook"},
    "poller": {"on_start", "on_item"},
    "outbound": {"on_event"},
    "tools": {"tools", "ask"},
}
TOOLING = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def runtime_files() -> list[str]:
    """The runtime's files as copier copies them (what git tracks or would track), relative
    to template/runtime."""
    listed = git(
        TEMPLATE_ROOT,
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
        "-z",
        "template/runtime",
    )
    return sorted(name.removeprefix("template/runtime/") for name in listed.split("\0") if name)


def generated_files(path: Path) -> set[str]:
    """The files copier wrote (not what the first steps and the tools add)."""
    found = set()
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in TOOLING and not d.endswith(".egg-info")]
        found |= {Path(folder, name).relative_to(path).as_posix() for name in files}
    return {name for name in found if name != "uv.lock" and not name.startswith(".coverage")}


def test_the_exact_set_of_files(rendered: Project) -> None:
    runtime = {f"runtime/{name}" for name in runtime_files()}
    tests = [f"tests/test_{capability}.py" for capability in rendered.capabilities] or [
        "tests/test_echo.py"
    ]
    expected = {
        ".copier-answers.yml", ".gitignore", ".pre-commit-config.yaml", "CHANGELOG.md", "LICENSE",
        "README.md", "SECURITY.md", "nexo-plugin.toml", "pyproject.toml", f"bin/{rendered.plugin_id}",
        f"src/{rendered.plugin_id}/__init__.py", f"src/{rendered.plugin_id}/main.py",
        f"src/{rendered.plugin_id}/handlers.py", "scripts/nexo_manifest.py", "scripts/nexo_stdout.py", "scripts/pack_tarball.py",
        "scripts/split_bundle.py", "scripts/verify_release.py", ".github/CODEOWNERS",
        ".github/dependabot.yml", ".github/workflows/ci.yml", ".github/workflows/release.yml",
        "tests/conftest.py", "tests/test_protocol.py", "tests/test_release.py", *tests, *runtime,
        "scripts/template_update.py", "nexo-dev.toml",
    }  # fmt: skip
    expected |= {
        "workflow": {".github/workflows/template-update.yml"},
        "renovate": {"renovate.json"},
        "none": set(),
    }[rendered.answers.get("template_updates", "workflow")]
    assert generated_files(rendered.path) == expected


def test_the_runtime_arrives_verbatim_and_checks_clean(rendered: Project) -> None:
    for name in runtime_files():
        copy = rendered.path / "runtime" / name
        assert copy.read_bytes() == (RUNTIME / name).read_bytes(), copy
    from nexo_plugin_runtime.integrity import runtime_problems

    assert runtime_problems(str(rendered.path)) == []


def test_the_manifest_follows_the_capabilities_and_the_daemon_s_rules(rendered: Project) -> None:
    plugin = rendered.manifest["plugin"]
    checked = subprocess.run(
        [sys.executable, "scripts/nexo_manifest.py"],
        cwd=rendered.path,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert plugin["id"] == rendered.plugin_id
    assert plugin["version"] == "0.1.0"
    assert plugin["entrypoint"] == {"command": f"./bin/{rendered.plugin_id}", "args": []}
    required = [
        f"{rendered.env_prefix}_{name}"
        for capability in rendered.capabilities
        for name in REQUIRED[capability]
    ]
    assert plugin["requires"].get("env", []) == required
    if rendered.capabilities == ["tools"]:
        assert "channels" not in plugin
    else:
        kind = rendered.answers["channel_kind"]
        assert plugin["channels"]["register"] == [{"kind": kind, "adapter": rendered.plugin_id}]
    tools = [f"{rendered.plugin_id}_ask"] if "tools" in rendered.capabilities else []
    assert plugin.get("extends", {}).get("tools", []) == tools
    repository = (
        f"https://github.com/{rendered.answers['github_owner']}/{rendered.answers['github_repo']}"
    )
    assert plugin["meta"] == {
        "author": rendered.answers["author_name"],
        "license": rendered.answers["license"],
        "homepage": repository,
        "repository": repository,
    }


def test_pyproject_names_the_runtime_in_one_line_and_pins_nothing(rendered: Project) -> None:
    pyproject = read_toml(rendered.path / "pyproject.toml")
    extras = [
        extra
        for extra, used in (("http", {"poller", "outbound"}), ("webhook", {"webhook"}))
        if used & set(rendered.capabilities)
    ]
    runtime = "nexo-plugin-runtime" + (f"[{','.join(extras)}]" if extras else "")
    assert pyproject["project"]["dependencies"] == [runtime]
    assert pyproject["dependency-groups"]["dev"] == ["nexo-plugin-runtime[dev]"]
    assert pyproject["tool"]["uv"]["workspace"]["members"] == ["runtime"]
    assert pyproject["tool"]["uv"]["sources"]["nexo-plugin-runtime"] == {"workspace": True}
    assert "==" not in (rendered.path / "pyproject.toml").read_text()  # the pins are the runtime's
    assert pyproject["project"]["requires-python"] == f">={rendered.answers['python_min']}"
    assert pyproject["tool"]["ruff"]["extend-exclude"] == ["runtime"]
    assert pyproject["tool"]["mypy"]["strict"] is True
    assert "-m" in pyproject["tool"]["pytest"]["ini_options"]["addopts"]  # slow left out


def test_handlers_hold_the_hooks_of_the_capabilities_and_nothing_else(rendered: Project) -> None:
    handlers = rendered.package / "handlers.py"
    tree = ast.parse(handlers.read_text())
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    defined |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    expected = set().union(*(HOOKS[capability] for capability in rendered.capabilities)) or {
        "on_event"
    }
    assert expected <= defined
    if rendered.capabilities and not {"webhook", "poller"} & set(rendered.capabilities):
        assert "on_start" not in defined
    assert ("Config" in defined) == bool(rendered.capabilities)
    # What every author reads first stays short: the proof's bridge with tools under 120.
    if set(rendered.capabilities) == {"webhook", "outbound", "tools"}:
        assert len(handlers.read_text().splitlines()) < 120
    assert "runtime" not in [
        alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
    ]


def test_the_readme_layout_table_names_every_file_and_its_owner(rendered: Project) -> None:
    readme = (rendered.path / "README.md").read_text()
    layout = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| .+? \| (.+?) \|$", layout, re.M)[1:]
    paths = {path.strip("`") for cell, _ in rows for path in re.findall(r"`([^`]+)`", cell)}
    owners = {owner for _, owner in rows}
    assert owners <= {
        "yours: never updated", "yours, merged with the template's", "yours: commit it",
        "the template's: replaced, checked", "the template's, merged", "copier's: never edit",
    }  # fmt: skip
    for name in generated_files(rendered.path) | {"uv.lock"}:
        covered = name in paths or any(
            name.startswith(path) for path in paths if path.endswith("/")
        )
        assert covered, f"{name} is not in the README's layout table"
    skipped = {path for path in read_toml_skip_if_exists()}
    for cell, owner in rows:
        for path in re.findall(r"`([^`]+)`", cell):
            if owner == "yours: never updated":
                assert any(re.fullmatch(pattern, path) for pattern in skipped), path


def read_toml_skip_if_exists() -> set[str]:
    """copier.yml's _skip_if_exists, as regular expressions of generated paths."""
    import yaml

    patterns = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())["_skip_if_exists"]
    return {re.escape(p).replace(r"\{\{\ package_name\ \}\}", "[a-z0-9_]+") for p in patterns}


def test_generated_python_is_ruff_clean(rendered: Project) -> None:
    version = subprocess.run(
        [str(BIN / "ruff"), "--version"], capture_output=True, text=True
    ).stdout
    assert version.split()[-1] == runtime_pins()["ruff"]  # the plugins' own ruff
    for command in (
        ["check", "--no-cache", "."],
        ["format", "--no-cache", "--check", "--diff", "."],
    ):
        run = subprocess.run(
            [str(BIN / "ruff"), *command], cwd=rendered.path, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_the_launcher_is_an_executable_shell_script(rendered: Project) -> None:
    mode = rendered.launcher.stat().st_mode
    assert mode & stat.S_IXUSR
    assert mode & stat.S_IXGRP
    assert mode & stat.S_IXOTH
    assert rendered.launcher.read_text().startswith("#!/bin/sh\n")


def test_the_version_is_written_only_in_the_manifest(rendered: Project) -> None:
    holders = [
        name
        for name in generated_files(rendered.path)
        if not name.startswith("runtime/") and '"0.1.0"' in (rendered.path / name).read_text()
    ]
    assert holders == ["nexo-plugin.toml"]


def test_the_license_matches_the_answer(rendered: Project) -> None:
    text = (rendered.path / "LICENSE").read_text(encoding="utf-8")
    first_line = {
        "MIT": "MIT License",
        "Apache-2.0": "Apache License",
        "BSD-3-Clause": "BSD 3-Clause License",
    }
    assert text.splitlines()[0].strip() == first_line[rendered.answers["license"]]
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    if rendered.answers["license"] != "Apache-2.0":
        assert rendered.answers["author_name"] in text


def test_code_owners_guard_the_release(rendered: Project) -> None:
    owners = dict(
        line.split(" ", 1)
        for line in (rendered.path / ".github/CODEOWNERS").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert owners["/.github/workflows/release.yml"] == f"@{rendered.answers['github_owner']}"
    assert {"/scripts/pack_tarball.py", "/scripts/split_bundle.py", "/uv.lock", "/runtime/"} <= set(
        owners
    )


def test_the_answers_file_records_the_answers_and_no_derived_value(rendered: Project) -> None:
    answers = rendered.answers
    assert Path(answers["_src_path"]).is_absolute()
    assert answers["_commit"]
    assert answers["capabilities"] == rendered.capabilities
    assert {
        "package_name",
        "launcher_path",
        "tool_names",
        "required_env",
        "has_channel",
        "runtime_extras",
    } & set(answers) == set()


@pytest.mark.parametrize("capabilities", [[], list(CAPABILITIES)], ids=["echo", "all"])
def test_python_3_14_renders_a_clean_project(tmp_path: Path, capabilities: list[str]) -> None:
    # No Python 3.14 here to lock or run it: its files are checked as far as that allows.
    project = render(
        tmp_path / "newest", plugin_id="newest", python_min="3.14", capabilities=capabilities
    )
    ci = (project / ".github/workflows/ci.yml").read_text()
    assert '- "3.14"' in ci
    assert '- "3.13"' not in ci
    assert read_toml(project / "pyproject.toml")["project"]["requires-python"] == ">=3.14"
    for command in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run([str(BIN / "ruff"), *command], cwd=project, capture_output=True)
        assert run.returncode == 0, run.stdout
