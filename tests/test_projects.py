"""Generated projects are products: straight after the README's first steps, each full
combination passes its own strict type check, its own tests under coverage with their
floor, its slow tests (packed, installed read-only and run), and Scientific Python's
repo-review. The runtime itself is tested in tests/runtime; here it is this combination's
handlers, manifest, tests and release that must work with it."""

from __future__ import annotations

import itertools
import json
import subprocess

from environments import run_in, run_mypy
from git_repos import git
from projects import CAPABILITIES, CASES, Project
from rendering import BIN, read_toml, runtime_pins


def test_the_set_up_combinations_cover_every_pair_of_capabilities() -> None:
    # For any two capabilities: a plugin with both, with neither, and with each alone.
    full = [set(case.capabilities) for case in CASES.values() if case.full]
    for first, second in itertools.combinations(CAPABILITIES, 2):
        states = {(first in capabilities, second in capabilities) for capabilities in full}
        assert len(states) == 4, (first, second, sorted(states))


def test_mypy_strict_passes(project: Project) -> None:
    run = run_mypy(project.path, project.tools_env)
    assert run.returncode == 0, run.stdout + run.stderr


def test_own_tests_pass_under_coverage_and_meet_the_floor(project: Project) -> None:
    # As the generated CI runs them: strict pytest under coverage, which follows the plugin
    # process; each file's tests on one core of this worker (-n0: the template's own tests
    # already use both cores).
    tests = run_in(
        project.path,
        *("coverage", "run", "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider"),
        env=project.tools_env,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "CoverageWarning" not in tests.stderr
    collected = tests.stdout.splitlines()[-1]
    assert "passed" in collected, collected
    assert "deselected" in collected, collected  # the slow ones wait for -m slow
    report = run_in(project.path, "coverage", "report")
    assert report.returncode == 0, report.stdout + report.stderr


def test_own_slow_tests_pack_install_and_run_the_release(project: Project) -> None:
    tests = run_in(
        project.path,
        *("pytest", "-q", "-n0", "-p", "no:cacheprovider", "-m", "slow"),
        env=project.tools_env,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout


def test_the_lock_is_committed_with_the_first_steps(project: Project) -> None:
    assert git(project.path, "ls-files", "uv.lock").strip() == "uv.lock"
    assert git(project.path, "status", "--porcelain") == ""  # nothing the steps made is left out
    assert "with the hashes\nof their files: commit it" in (project.path / "README.md").read_text()


def test_the_lock_pins_the_runtime_and_what_the_capabilities_use(project: Project) -> None:
    check = subprocess.run(
        [str(BIN / "uv"), "lock", "--check", "--offline"], cwd=project.path, capture_output=True
    )
    assert check.returncode == 0, check.stderr
    locked = {
        package["name"]: package.get("version")
        for package in read_toml(project.path / "uv.lock")["package"]
    }
    assert locked["nexoai"] == runtime_pins()["nexoai"]
    assert locked["ruff"] == runtime_pins()["ruff"]
    assert "nexo-plugin-runtime" in locked
    # What the release vendors: the SDK, and httpx or h11 only for the capabilities using them.
    export = run_in(
        project.path, "uv", "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes"
    )
    vendored = {line.split("==")[0] for line in export.stdout.splitlines() if "==" in line}
    assert "nexoai" in vendored
    assert ("httpx" in vendored) == bool({"poller", "outbound"} & set(project.capabilities))
    assert ("h11" in vendored) == ("webhook" in project.capabilities or "httpx" in vendored)


def test_scientific_python_s_repo_review_finds_nothing(project: Project) -> None:
    # sp-repo-review's list of what a well-kept Python project has; the checks a plugin
    # deliberately skips are named, with why, in its pyproject.toml ([tool.repo-review]).
    run = subprocess.run(
        [str(BIN / "repo-review"), str(project.path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    checks = json.loads(run.stdout)["checks"]
    failed = {
        name: check["err_msg"].splitlines()[0]
        for name, check in checks.items()
        if check["result"] is False
    }
    assert failed == {}
    for family in ("MY", "PP", "RF", "GH", "PC", "PY"):
        assert any(name.startswith(family) and check["result"] for name, check in checks.items())
