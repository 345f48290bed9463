"""The template repository itself: its CI workflow, its code style, its two commands, its
license and lock, and the launcher every plugin gets, linted half by half."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from projects import Project
from rendering import BIN, TEMPLATE_ROOT
from workflow_lint import assert_clean


def test_own_github_files_pass_the_offline_linters() -> None:
    assert_clean(TEMPLATE_ROOT / ".github")


def test_own_ci_runs_the_readme_test_command_on_linux_and_macos() -> None:
    workflow = yaml.safe_load((TEMPLATE_ROOT / ".github/workflows/ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert workflow["permissions"] == {}
    assert job["permissions"] == {"contents": "read"}
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest"}
    assert job["strategy"]["matrix"]["python"] == ["3.10", "3.14"]
    installed = job["steps"][1]["with"]["python-version"].split()
    assert [version for version in installed if version[0].isdigit()] == [
        "3.10",
        "3.11",
        "3.12",
        "3.13",
        "3.14",
    ]
    checkout = job["steps"][0]
    assert checkout["with"] == {"persist-credentials": False, "fetch-depth": 0}
    assert job["steps"][-1]["run"] == "python dev.py test"


def test_readme_starts_with_the_two_commands_ci_runs() -> None:
    readme = (TEMPLATE_ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert first_block
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert "\npython3 dev.py test\n" in (TEMPLATE_ROOT / ".ci/run").read_text()


def test_own_python_is_ruff_clean() -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run(
            [str(BIN / "ruff"), *command], cwd=TEMPLATE_ROOT, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_own_python_is_mypy_strict() -> None:
    # tests/runtime has a conftest.py of its own: mypy checks it apart (pyproject.toml).
    for command, cwd in (
        ([str(BIN / "mypy")], TEMPLATE_ROOT),
        (
            [str(BIN / "mypy"), "--strict", "--python-version", "3.10", "."],
            TEMPLATE_ROOT / "tests/runtime",
        ),
    ):
        run = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr


def test_own_dev_tools_are_locked() -> None:
    run = subprocess.run(
        [str(BIN / "uv"), "lock", "--check", "--offline"], cwd=TEMPLATE_ROOT, capture_output=True
    )
    assert run.returncode == 0, run.stderr
    assert not (TEMPLATE_ROOT / "requirements-dev.txt").exists()


def test_the_repository_has_a_license_of_its_own() -> None:
    text = (TEMPLATE_ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "generated" in (TEMPLATE_ROOT / "README.md").read_text().split("## License")[1]


def halves(launcher: Path) -> tuple[str, str]:
    """The launcher's shell half (up to the line closing the string the shell skips) and its
    Python half."""
    text = launcher.read_text()
    shell, python = text.split("\n'''\n", 1)
    return shell.replace("''':'\n", "", 1) + "\n", python.lstrip("\n")


@pytest.mark.cases("echo")
def test_the_launcher_passes_shellcheck_and_ruff(rendered: Project, tmp_path: Path) -> None:
    project = rendered
    shell, python = halves(project.launcher)
    (tmp_path / "launcher.sh").write_text(shell)
    checked = subprocess.run(
        [str(BIN / "shellcheck"), "--shell=sh", str(tmp_path / "launcher.sh")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout
    script = tmp_path / "launcher.py"
    script.write_text(python)
    config = project.path / "pyproject.toml"
    for command in (["check"], ["format", "--check"]):
        run = subprocess.run(
            [str(BIN / "ruff"), *command, "--config", str(config), str(script)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout + run.stderr
