"""What a rendered project contains, file by file, for every entry of the option matrix."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from projects import Project
from rendering import BIN, pins, read_toml, render

SHAPE_FILES = {
    "webhook": {"src/{package}/webhook.py"},
    "poller": {"tests/local_http.py"},
    "outbound": {"tests/local_http.py"},
}


def project_files(path: Path) -> set[str]:
    skipped = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
    found = set()
    for folder, dirs, files in os.walk(path):
        dirs[:] = [name for name in dirs if name not in skipped and not name.endswith(".egg-info")]
        found |= {str(Path(folder, name).relative_to(path)) for name in files}
    return found - {".coverage"}


def test_exact_set_of_generated_files(project: Project) -> None:
    package = f"src/{project.plugin_id}"
    expected = {
        ".copier-answers.yml",
        ".gitignore",
        ".pre-commit-config.yaml",
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "SECURITY.md",
        "nexo-plugin.toml",
        "pyproject.toml",
        "uv.lock",
        f"bin/{project.plugin_id}",
        *(
            f"{package}/{name}.py"
            for name in (
                "__init__",
                "__main__",
                "api",
                "bytecode_cache",
                "config",
                "frames",
                "handlers",
                "main",
                "runtime",
                "sdk_adapter",
                "startup",
            )
        ),
        "scripts/nexo_manifest.py",
        "scripts/pack_tarball.py",
        "scripts/split_bundle.py",
        "scripts/verify_release.py",
        ".github/CODEOWNERS",
        ".github/dependabot.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
        "tests/conftest.py",
        "tests/test_config.py",
        "tests/host.py",
        "tests/plugin_fixtures.py",
        "tests/test_handlers.py",
        "tests/test_pack.py",
        "tests/test_protocol.py",
    }
    expected |= {
        name.format(package=project.plugin_id) for name in SHAPE_FILES.get(project.shape, ())
    }
    assert project_files(project.path) == expected


def test_manifest_values(project: Project) -> None:
    answers = project.answers
    manifest = project.manifest
    assert set(manifest) == {"plugin"}
    plugin = manifest["plugin"]
    tables = {"entrypoint", "requires", "meta"}
    tables |= {"channels"} if project.shape != "tool" else set()
    tables |= {"extends"} if project.tools else set()
    # Exactly these keys: the daemon rejects unknown ones (tests/test_hooks.py runs the
    # nexo-manifest hook, which knows every allowed key, on each render too).
    assert set(plugin) == {"id", "version", "name", "description", "min_nexo_version"} | tables
    assert plugin["id"] == project.plugin_id
    assert plugin["version"] == "0.1.0"
    assert plugin["name"] == answers["plugin_name"]
    assert plugin["description"] == answers["description"]
    assert plugin["min_nexo_version"] == ">=0.1.0"
    assert plugin["entrypoint"] == {"command": f"./bin/{project.plugin_id}", "args": []}
    required = {
        "echo": [],
        "poller": ["FEED_URL"],
        "webhook": ["WEBHOOK_TOKEN"],
        "outbound": ["API_URL"],
        "tool": ["LLM_PROVIDER", "LLM_MODEL"],
    }[project.shape]
    assert plugin["requires"].get("env", []) == [
        f"{project.env_prefix}_{name}" for name in required
    ]
    assert plugin["requires"]["bins"] == ["python3"]
    if project.shape != "tool":
        assert plugin["channels"]["register"] == [
            {"kind": answers["channel_kind"], "adapter": project.plugin_id}
        ]
    repository = f"https://github.com/{answers['github_owner']}/{answers['github_repo']}"
    assert plugin["meta"] == {
        "author": answers["author_name"],
        "license": answers["license"],
        "homepage": repository,
        "repository": repository,
    }
    expected_tools = [f"{project.plugin_id}_ask"] if project.shape == "tool" else []
    expected_tools += [f"{project.plugin_id}_echo"] if answers.get("with_example_tool") else []
    assert project.tools == expected_tools


def test_pyproject(project: Project) -> None:
    answers = project.answers
    pyproject = read_toml(project.path / "pyproject.toml")
    meta = pyproject["project"]
    libraries = {
        "poller": ["httpx>=0.28,<1"],
        "outbound": ["httpx>=0.28,<1"],
        "webhook": ["h11>=0.16,<1"],
    }.get(project.shape, [])
    assert meta["dependencies"] == [f"nexoai=={answers['nexoai_version']}", *libraries]
    assert answers["nexoai_version"] == pins()["nexoai"]
    assert meta["requires-python"] == f">={answers['python_min']}"
    assert meta["license"] == answers["license"]
    assert meta["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "nexo-plugin.toml"
    dev = pyproject["dependency-groups"]["dev"]
    assert {f"ruff=={pins()['ruff']}", f"mypy=={pins()['mypy']}"} <= set(dev)
    assert pyproject["tool"]["mypy"]["strict"] is True
    assert pyproject["tool"]["pytest"]["ini_options"]["filterwarnings"] == ["error"]
    assert pyproject["tool"]["coverage"]["report"]["fail_under"] > 0
    assert {"ASYNC", "DTZ", "PT", "RUF", "TID"} <= set(pyproject["tool"]["ruff"]["lint"]["select"])
    assert pyproject["tool"]["ruff"]["target-version"] == "py310"  # the same in every plugin


def test_the_lock_is_current_and_pins_the_runtime(project: Project) -> None:
    check = subprocess.run(
        [str(BIN / "uv"), "lock", "--check", "--offline"], cwd=project.path, capture_output=True
    )
    assert check.returncode == 0, check.stderr
    lock = read_toml(project.path / "uv.lock")
    locked = {package["name"]: package.get("version") for package in lock["package"]}
    assert locked["nexoai"] == project.answers["nexoai_version"]
    if project.shape in ("poller", "outbound"):
        assert {"httpx", "httpcore", "anyio", "h11", "idna", "certifi"} <= set(locked)


def test_version_is_written_only_in_the_manifest(project: Project) -> None:
    holders = [
        name
        for name in project_files(project.path) - {"uv.lock"}
        if '"0.1.0"' in (project.path / name).read_text(encoding="utf-8")
    ]
    assert holders == ["nexo-plugin.toml"]


def test_launcher_is_executable_and_a_shell_script(project: Project) -> None:
    mode = project.launcher.stat().st_mode
    assert mode & stat.S_IXUSR
    assert mode & stat.S_IXGRP
    assert mode & stat.S_IXOTH
    assert project.launcher.read_text(encoding="utf-8").startswith("#!/bin/sh\n")


def test_license_matches_the_answer(project: Project) -> None:
    text = (project.path / "LICENSE").read_text(encoding="utf-8")
    first_line = {
        "MIT": "MIT License",
        "Apache-2.0": "Apache License",
        "BSD-3-Clause": "BSD 3-Clause License",
    }[project.answers["license"]]
    assert text.splitlines()[0].strip() == first_line
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    if project.answers["license"] != "Apache-2.0":
        assert project.answers["author_name"] in text


def test_codeowners_guard_the_release(project: Project) -> None:
    owners = dict(
        line.split(" ", 1)
        for line in (project.path / ".github/CODEOWNERS").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert owners["/.github/workflows/release.yml"] == f"@{project.answers['github_owner']}"
    assert {"/scripts/pack_tarball.py", "/scripts/split_bundle.py", "/uv.lock"} <= set(owners)


def test_answers_file_records_the_template_and_no_derived_values(project: Project) -> None:
    answers = project.answers
    assert Path(answers["_src_path"]).is_absolute()
    assert answers["_commit"]
    assert {"package_name", "launcher_path", "tool_names", "required_env"} & set(answers) == set()


@pytest.mark.parametrize("shape", ["echo", "tool"])
def test_python_3_14_renders_a_clean_project(tmp_path: Path, shape: str) -> None:
    # No Python 3.14 here to lock or run it: its files are checked as far as that allows.
    project = render(tmp_path / "newest", plugin_id="newest", python_min="3.14", plugin_shape=shape)
    ci = (project / ".github/workflows/ci.yml").read_text()
    assert '- "3.14"' in ci
    assert '- "3.13"' not in ci
    assert read_toml(project / "pyproject.toml")["project"]["requires-python"] == ">=3.14"
    for command in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run([str(BIN / "ruff"), *command], cwd=project, capture_output=True)
        assert run.returncode == 0, run.stdout
