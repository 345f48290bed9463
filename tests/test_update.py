"""Updates of a fleet of plugins between two tagged versions of this template, as the
template-update workflow makes them: scripts/template_update.py in each plugin
(tests/template_versions.py makes the versions and the plugins).

The authors' own changes (`uv add httpx pydantic`, handlers, tests, README) and the
template's (a runtime fix, a bump of the SDK pin, a change of behaviour, workflow and script
fixes, a new question) never touch the same lines: each plugin's update branch arrives
without a conflict, its checks pass, and its pull request's text carries the release notes.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from environments import run_in
from git_repos import git
from rendering import read_answers, read_toml, runtime_pins
from template_versions import (
    CONFLICT_MARKER,
    MAX_HANDLERS_V2,
    RUNTIME_FIX,
    RoundTrip,
    append,
    author_edits,
    plugin_from,
    release_v2,
    template_v1,
    update_script,
)

pytestmark = pytest.mark.slow

# A fleet: plugins of one template release with other capabilities and their authors' own
# changes (upd_plugin's with `uv add` too), each updated by its script to the next release.
# An echo and a plugin with three capabilities: a third plugin (tools alone) cost the full
# tier 30 s and met no file these two do not.
FLEET = {"upd_plugin": [], "relay_plugin": ["webhook", "outbound", "tools"]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RoundTrip]:
    tmp = tmp_path_factory.mktemp("fleet")
    template = template_v1(tmp)

    def started(plugin_id: str) -> Path:
        data = (f"plugin_id={plugin_id}", f"capabilities={json.dumps(FLEET[plugin_id])}")
        project = plugin_from(template, tmp / plugin_id, *data)
        author_edits(project, dependencies=plugin_id == "upd_plugin")
        return project

    # The plugins live their own lives, at once, as a fleet's repositories do; their updates
    # come one after the other, to share one mypy cache.
    with ThreadPoolExecutor(max_workers=len(FLEET)) as pool:
        projects = dict(zip(FLEET, pool.map(started, FLEET), strict=True))
    release_v2(template)
    return {
        plugin_id: RoundTrip(template, project, *update_script(project, tmp / "mypy-cache"))
        for plugin_id, project in projects.items()
    }


@pytest.fixture(scope="module")
def round_trip(fleet: dict[str, RoundTrip]) -> RoundTrip:
    return fleet["upd_plugin"]


def test_the_update_runs_without_trust_and_says_what_to_do_next(round_trip: RoundTrip) -> None:
    # The first steps commit uv.lock: the tree is clean, so the update goes ahead, on a
    # branch of its own, committed.
    assert round_trip.update.returncode == 0, round_trip.update.stdout + round_trip.update.stderr
    assert read_answers(round_trip.project)["_commit"] == "v2.0.0"
    project = round_trip.project
    assert git(project, "branch", "--show-current").strip() == "template-update"
    assert git(project, "status", "--porcelain") == ""
    assert "v1.0.0" in git(project, "show", "main:.copier-answers.yml")  # main is untouched
    said = round_trip.update.stdout + round_trip.update.stderr
    assert "now follows nexo-python-template v2.0.0" in said
    assert "bin/upd_plugin --check" in said
    # What the release asks of authors, from the changelog's Upgrading notes.
    assert "Upgrading to 2.0.0 (2027-01-01)" in said
    assert "  - Set `support_url` if operators report problems elsewhere." in said


def test_the_template_s_fixes_and_sdk_pin_arrive(round_trip: RoundTrip) -> None:
    project = round_trip.project
    assert (project / "runtime/src/nexo_plugin_runtime/frames.py").read_text().endswith(RUNTIME_FIX)
    runtime = read_toml(project / "runtime/pyproject.toml")["project"]["dependencies"]
    assert f"nexoai=={runtime_pins()['nexoai']}" in runtime
    assert (project / ".github/workflows/release.yml").read_text().endswith("# v2: release.yml\n")
    assert (project / "scripts/pack_tarball.py").read_text().endswith("# v2: pack_tarball.py\n")
    # The pre-commit hooks follow the template version too: they run scripts/.
    assert (project / "scripts/nexo_stdout.py").read_text().endswith("# v2: nexo_stdout.py\n")


def test_the_author_s_files_dependencies_and_edits_survive(round_trip: RoundTrip) -> None:
    project = round_trip.project
    dependencies = read_toml(project / "pyproject.toml")["project"]["dependencies"]
    names = sorted(item.split(">=")[0] for item in dependencies)
    assert names == ["httpx", "nexo-plugin-runtime", "pydantic"]
    handlers = (project / "src/upd_plugin/handlers.py").read_text()
    assert "AUTHOR_SETTING = 1" in handlers
    assert "# v2" not in handlers + (project / "src/upd_plugin/main.py").read_text()
    assert "def test_the_author_s_own" in (project / "tests/test_echo.py").read_text()
    readme = (project / "README.md").read_text()
    assert readme.startswith("<!-- ACME: ask the platform team")  # the author's line...
    assert "Support: https://github.com/your-org/nexo-plugin-upd-plugin/issues" in readme  # ...v2's
    assert (project / "CHANGELOG.md").read_text().startswith("# The author's changelog")
    assert (
        read_answers(project)["support_url"]
        == "https://github.com/your-org/nexo-plugin-upd-plugin/issues"
    )


def test_no_rejects_and_no_conflict_markers(round_trip: RoundTrip) -> None:
    project = round_trip.project
    assert not list(project.rglob("*.rej"))
    for path in project.rglob("*"):
        if path.is_file() and not {".git", ".venv"} & set(path.parts):
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path


@pytest.mark.parametrize("plugin_id", FLEET)
def test_each_plugin_of_the_fleet_gets_a_green_branch_with_the_release_notes(
    fleet: dict[str, RoundTrip], plugin_id: str
) -> None:
    trip = fleet[plugin_id]
    assert trip.update.returncode == 0, trip.update.stdout + trip.update.stderr
    body, project = trip.body, trip.project
    assert body.startswith("Update from nexo-python-template v1.0.0 to v2.0.0")
    assert "## Conflicts\n\nNone." in body
    checks = re.findall(r"(?m)^- \[(x| )\] `(.*)`$", body)
    assert [command for _, command in checks] == [
        "uv lock", "uv sync --locked", f"bin/{plugin_id} --check", "uv run ruff check .",
        "uv run ruff format --check .", "uv run mypy", "uv run pytest -q -p no:cacheprovider",
    ]  # fmt: skip
    assert all(done == "x" for done, _ in checks), body
    # The template's notes of every release after the one the plugin followed.
    notes = body.split("## What the template's releases say", 1)[1]
    assert "### 2.0.0 (2027-01-01)" in notes
    assert "- At most 500 handlers run at once now" in notes
    assert "### 1.0.0" not in notes
    # v2's change of behaviour arrived; the author's changes stayed.
    assert MAX_HANDLERS_V2 in (project / "runtime/src/nexo_plugin_runtime/context.py").read_text()
    assert "AUTHOR_SETTING = 1" in (project / f"src/{plugin_id}/handlers.py").read_text()
    assert (project / "README.md").read_text().startswith("<!-- ACME: ask the platform team")


def test_the_updated_plugin_passes_its_checks_then_refuses_an_edited_runtime(
    round_trip: RoundTrip,
) -> None:
    project = round_trip.project
    locked = {
        package["name"]: package.get("version")
        for package in read_toml(project / "uv.lock")["package"]
    }
    assert locked["nexoai"] == runtime_pins()["nexoai"]
    assert {"httpx", "pydantic"} <= set(locked)
    session = project / "runtime/src/nexo_plugin_runtime/session.py"
    append(session, "# the author's tweak\n")
    refused = run_in(project, "python", "bin/upd_plugin", "--check")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == (
        "upd_plugin: runtime/src/nexo_plugin_runtime/session.py differs from the runtime of the "
        "template version this plugin follows"
    )
    assert (
        "`copier update` replaces it: move the change into your own code under src/"
        in refused.stderr
    )
