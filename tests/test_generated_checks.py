"""Generated projects are products: their own lint, format and tests pass straight away."""

from __future__ import annotations

import pytest
from conftest import Project
from render import run_in


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "--diff", "."),
        ("pytest", "-q", "-p", "no:cacheprovider"),
    ],
    ids=["ruff-check", "ruff-format", "pytest"],
)
def test_generated_project_passes_its_own_checks(
    project: Project, command: tuple[str, ...]
) -> None:
    run = run_in(project.path, *command)
    assert run.returncode == 0, run.stdout + run.stderr


def test_generated_tests_cover_the_handlers(project: Project) -> None:
    run = run_in(project.path, "pytest", "-q", "-p", "no:cacheprovider", "--collect-only")
    collected = run.stdout
    assert "test_event_is_echoed_on_the_inbound_topic" in collected
    assert ("test_echo_tool_returns_its_text" in collected) == project.answers["with_example_tool"]
