"""The template repository itself: its CI workflow, its code style, its two commands."""

from __future__ import annotations

import re
import subprocess

import yaml
from render import BIN, TEMPLATE_ROOT
from workflow_lint import assert_clean


def test_own_github_files_pass_the_offline_linters() -> None:
    assert_clean(TEMPLATE_ROOT / ".github")


def test_own_ci_runs_the_readme_test_command_on_linux_and_macos() -> None:
    workflow = yaml.safe_load((TEMPLATE_ROOT / ".github/workflows/ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert workflow["permissions"] == {} and job["permissions"] == {"contents": "read"}
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest"}
    assert job["strategy"]["matrix"]["python"] == ["3.10", "3.13"]
    checkout = job["steps"][0]
    assert checkout["with"] == {"persist-credentials": False, "fetch-depth": 0}
    assert job["steps"][-1]["run"] == "python dev.py test"


def test_readme_starts_with_the_two_commands_ci_runs() -> None:
    readme = (TEMPLATE_ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert "\npython3 dev.py test\n" in (TEMPLATE_ROOT / ".ci/run").read_text()


def test_own_python_is_ruff_clean() -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run(
            [str(BIN / "ruff"), *command], cwd=TEMPLATE_ROOT, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
