"""What a rendered project contains, file by file, for every entry of the option matrix."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import Project
from render import read_toml


def project_files(project: Project) -> set[str]:
    skipped = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
    found = set()
    for folder, dirs, files in os.walk(project.path):
        dirs[:] = [name for name in dirs if name not in skipped and not name.endswith(".egg-info")]
        found |= {str(Path(folder, name).relative_to(project.path)) for name in files}
    return found


def test_exact_set_of_generated_files(project: Project) -> None:
    package = f"src/{project.plugin_id}"
    assert project_files(project) == {
        ".copier-answers.yml",
        ".gitignore",
        ".pre-commit-config.yaml",
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "nexo-plugin.toml",
        "pyproject.toml",
        f"bin/{project.plugin_id}",
        f"{package}/__init__.py",
        f"{package}/__main__.py",
        f"{package}/handlers.py",
        f"{package}/main.py",
        f"{package}/runtime.py",
        "scripts/nexo_manifest.py",
        "scripts/pack_tarball.py",
        "scripts/split_bundle.py",
        "scripts/verify_release.py",
        ".github/dependabot.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
        "tests/conftest.py",
        "tests/host.py",
        "tests/test_handlers.py",
        "tests/test_pack.py",
        "tests/test_protocol.py",
    }


def test_manifest_values(project: Project) -> None:
    answers = project.answers
    manifest = project.manifest
    assert set(manifest) == {"plugin"}
    plugin = manifest["plugin"]
    tables = {"entrypoint", "requires", "channels", "meta"} | (
        {"extends"} if answers["with_example_tool"] else set()
    )
    # Exactly these keys: the daemon rejects unknown ones (tests/test_hooks.py runs the
    # nexo-manifest hook, which knows every allowed key, on each render too).
    assert set(plugin) == {"id", "version", "name", "description", "min_nexo_version"} | tables
    assert plugin["requires"] == {"bins": ["python3"], "nexo_capabilities": ["broker"]}
    assert plugin["id"] == project.plugin_id
    assert plugin["version"] == "0.1.0"
    assert plugin["name"] == answers["plugin_name"]
    assert plugin["description"] == answers["description"]
    assert plugin["min_nexo_version"] == ">=0.1.0"
    assert plugin["entrypoint"] == {"command": f"./bin/{project.plugin_id}", "args": []}
    assert plugin["channels"]["register"] == [
        {"kind": answers["channel_kind"], "adapter": project.plugin_id}
    ]
    assert len(answers["channel_kind"]) <= 32
    repository = f"https://github.com/{answers['github_owner']}/{answers['github_repo']}"
    assert plugin["meta"] == {
        "author": answers["author_name"],
        "license": answers["license"],
        "homepage": repository,
        "repository": repository,
    }
    if answers["with_example_tool"]:
        assert plugin["extends"] == {"tools": [f"{project.plugin_id}_echo"]}
    else:
        assert "extends" not in plugin


def test_pyproject(project: Project) -> None:
    answers = project.answers
    pyproject = read_toml(project.path / "pyproject.toml")
    meta = pyproject["project"]
    sdk = [f"nexoai=={answers['nexoai_version']}"]
    tomli = ["tomli==2.5.0; python_version < '3.11'"] if answers["python_min"] == "3.10" else []
    assert meta["dependencies"] == sdk + tomli
    assert meta["requires-python"] == f">={answers['python_min']}"
    assert meta["license"] == answers["license"]
    assert meta["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "nexo-plugin.toml"
    assert {"pytest", "ruff"} <= {
        requirement.split("=")[0].split(">")[0]
        for requirement in pyproject["dependency-groups"]["dev"]
    }
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + answers["python_min"].replace(
        ".", ""
    )


def test_version_is_written_only_in_the_manifest(project: Project) -> None:
    holders = [
        name
        for name in project_files(project)
        if '"0.1.0"' in (project.path / name).read_text(encoding="utf-8")
    ]
    assert holders == ["nexo-plugin.toml"]


def test_launcher_is_executable_and_a_shell_script(project: Project) -> None:
    mode = project.launcher.stat().st_mode
    assert mode & stat.S_IXUSR and mode & stat.S_IXGRP and mode & stat.S_IXOTH
    assert project.launcher.read_text(encoding="utf-8").startswith("#!/bin/sh\n")


def test_license_matches_the_answer(project: Project) -> None:
    text = (project.path / "LICENSE").read_text(encoding="utf-8")
    first_line = {
        "MIT": "MIT License",
        "Apache-2.0": "Apache License",
        "BSD-3-Clause": "BSD 3-Clause License",
    }[project.answers["license"]]
    assert text.splitlines()[0].strip() == first_line
    assert text.endswith("\n") and not text.endswith("\n\n")
    if project.answers["license"] != "Apache-2.0":
        assert project.answers["author_name"] in text


def test_answers_file_records_the_template_and_no_derived_values(project: Project) -> None:
    answers = project.answers
    assert Path(answers["_src_path"]).is_absolute()
    assert answers["_commit"]
    assert {"package_name", "launcher_path", "reserved_python_names"} & set(answers) == set()
