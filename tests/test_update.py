"""Updates between two tagged versions of this template, as a fleet of plugins gets them:
scripts/template_update.py in each (what the template-update workflow runs), and
`copier update` by hand.

The authors' own changes (`uv add httpx pydantic`, handlers, tests, README) and the
template's (a runtime fix, a bump of the SDK pin, a change of behaviour, workflow and script
fixes, a new question) never touch the same lines: each plugin's update branch arrives
without a conflict, its checks pass, and its pull request's text carries the release
notes. An edit to a file the template owns is where a conflict can happen: the branch names
it and its checks fail. Template changes are appended, never written into the template's
sentences, so that rewording the template does not break these tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from environments import find_python, first_steps, plain_path, run_in, uv
from git_repos import commit_all, git, template_copy
from nexo_plugin_runtime.integrity import hashes_listing
from rendering import BIN, copier_cli, read_answers, read_toml, runtime_pins

pytestmark = pytest.mark.slow

CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.M)
PYTHON = find_python("3.10") or "python3"
OLDER_SDK = "0.3.0"  # a real older release of nexoai: v1 pins it, v2 the current one
NEW_QUESTION = """
support_url:
  type: str
  help: Where operators report problems.
  default: "https://github.com/{{ github_owner }}/{{ github_repo }}/issues"
"""
RUNTIME_FIX = "\n# v2: a runtime fix\n"
V2_NOTES = """## 2.0.0 (2027-01-01)

### Upgrading

- Set `support_url` if operators report problems elsewhere.
- At most 500 handlers run at once now: set `plugin.max_handlers` in `on_start` for more.

"""
# v2's change of behaviour.
MAX_HANDLERS_V1, MAX_HANDLERS_V2 = "MAX_HANDLERS = 1000\n", "MAX_HANDLERS = 500\n"
# What v2 appends to files that follow the template, and to ones that are the author's.
FOLLOWING = {
    "template/runtime/src/nexo_plugin_runtime/frames.py": RUNTIME_FIX,
    "template/.github/workflows/release.yml.jinja": "# v2: release.yml\n",
    "template/scripts/pack_tarball.py": "# v2: pack_tarball.py\n",
    "hooks/nexo_stdout.py": "# v2: nexo_stdout.py\n",
    "template/README.md.jinja": "\nSupport: {{ support_url }}\n",
}
AUTHORS = {
    "template/src/{{ package_name }}/handlers.py.jinja": "# v2: handlers.py\n",
    "template/src/{{ package_name }}/main.py": "# v2: main.py\n",
}


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def relist_runtime(template: Path) -> None:
    runtime = template / "template" / "runtime"
    (runtime / "FILES.sha256").write_text(hashes_listing(str(runtime)))


def template_v1(tmp: Path) -> Path:
    """The template tagged v1.0.0, pinning the older SDK."""
    template = template_copy(tmp / "template", tag=None)
    pyproject = template / "template" / "runtime" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f"nexoai=={runtime_pins()['nexoai']}", f"nexoai=={OLDER_SDK}")
    )
    relist_runtime(template)
    commit_all(template, "v1", "v1.0.0")
    return template


def plugin_from(template: Path, project: Path, *data: str, synced: bool = True) -> Path:
    """A plugin of `template` after the README's first steps (or, not `synced`, committed)."""
    args = [arg for item in data for arg in ("--data", item)]
    run = copier_cli("copy", "--defaults", *args, str(template), str(project))
    assert run.returncode == 0, run.stderr
    if synced:
        first_steps(project, PYTHON)
    else:
        git(project, "init", "-q", "-b", "main")
        commit_all(project, "generated")
    return project


def render_v1(tmp: Path, *data: str, synced: bool = True) -> tuple[Path, Path]:
    template = template_v1(tmp)
    return template, plugin_from(template, tmp / "plugin", *data, synced=synced)


def release_v2(template: Path) -> None:
    """The current SDK pin back, a runtime fix, other fixes, a new question: v2.0.0."""
    pyproject = template / "template" / "runtime" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f"nexoai=={OLDER_SDK}", f"nexoai=={runtime_pins()['nexoai']}")
    )
    for name, text in {**FOLLOWING, **AUTHORS}.items():
        append(template / name, text)
    context = template / "template/runtime/src/nexo_plugin_runtime/context.py"
    context.write_text(context.read_text().replace(MAX_HANDLERS_V1, MAX_HANDLERS_V2))
    relist_runtime(template)
    append(template / "copier.yml", NEW_QUESTION)
    changelog = template / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    first = text.index("\n## ") + 1
    changelog.write_text(text[:first] + V2_NOTES + text[first:], encoding="utf-8")
    commit_all(template, "v2: template fixes", "v2.0.0")


def author_edits(project: Path, dependencies: bool = False) -> None:
    if dependencies:
        added = uv("add", "--quiet", "--python", PYTHON, "httpx", "pydantic", cwd=project)
        assert added.returncode == 0, added.stderr
    append(next(project.glob("src/*/handlers.py")), "\n\nAUTHOR_SETTING = 1\n")
    own_tests = set(project.glob("tests/test_*.py")) - {
        project / "tests/test_protocol.py",
        project / "tests/test_release.py",
    }
    append(min(own_tests), "\n\ndef test_the_author_s_own() -> None:\n    pass\n")
    readme = project / "README.md"
    readme.write_text("<!-- ACME: ask the platform team for a daemon. -->\n" + readme.read_text())
    changelog = project / "CHANGELOG.md"
    changelog.write_text("# The author's changelog\n\n" + changelog.read_text())
    commit_all(project, "author's changes")


@dataclass
class RoundTrip:
    template: Path
    project: Path
    update: subprocess.CompletedProcess[str]
    body: str = ""  # the pull request's text, when the update script made the branch


def update_script(
    project: Path, mypy_cache: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], str]:
    """scripts/template_update.py as the template-update workflow runs it, without
    --publish: the branch and the pull request's text. `mypy_cache`: one the fleet shares."""
    cache = {"MYPY_CACHE_DIR": str(mypy_cache)} if mypy_cache else {}
    body = project.parent / "pull-request.md"
    own = project / ".venv/bin/python"  # else this repository's: it has packaging too
    run = subprocess.run(
        [str(own if own.exists() else sys.executable), "scripts/template_update.py",
         "--copier", str(BIN / "copier"), "--body", str(body)],
        cwd=project, capture_output=True, text=True, timeout=900,
        env={**os.environ, **cache, "PATH": os.pathsep.join([str(project / ".venv/bin"), str(BIN), plain_path()])},
    )  # fmt: skip
    return run, body.read_text(encoding="utf-8") if body.exists() else ""


# A fleet: plugins of one template release with other capabilities and their authors' own
# changes (upd_plugin's with `uv add` too), each updated by its script to the next release.
FLEET = {"upd_plugin": [], "relay_plugin": ["webhook", "outbound"], "ask_plugin": ["tools"]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RoundTrip]:
    tmp = tmp_path_factory.mktemp("fleet")
    template = template_v1(tmp)
    projects = {}
    for plugin_id, capabilities in FLEET.items():
        data = (f"plugin_id={plugin_id}", f"capabilities={json.dumps(capabilities)}")
        projects[plugin_id] = plugin_from(template, tmp / plugin_id, *data)
        author_edits(projects[plugin_id], dependencies=plugin_id == "upd_plugin")
    release_v2(template)
    return {  # one after the other: they share a mypy cache
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


SUPPORT_URL = "https://support.example.com/nexo"


@pytest.fixture(scope="module")
def clash(tmp_path_factory: pytest.TempPathFactory) -> RoundTrip:
    """A plugin whose author edited files the template owns, updated to a v2 that changes
    them too, answering v2's new question on the command line."""
    template, project = render_v1(tmp_path_factory.mktemp("clash"), "plugin_id=clash", synced=False)
    append(project / "bin/clash", "# the author's line\n")
    append(project / "runtime/src/nexo_plugin_runtime/frames.py", "# the author's runtime line\n")
    commit_all(project, "author edits what the template owns")
    append(template / "template/bin/{{ plugin_id }}.jinja", "# the template's line\n")
    release_v2(template)
    update = copier_cli("update", "--defaults", "--data", f"support_url={SUPPORT_URL}", cwd=project)
    return RoundTrip(template, project, update)


def test_a_new_question_answered_with_data(clash: RoundTrip) -> None:
    assert read_answers(clash.project)["support_url"] == SUPPORT_URL
    assert f"Support: {SUPPORT_URL}" in (clash.project / "README.md").read_text()


def test_an_edit_to_a_file_the_template_owns_conflicts_visibly(clash: RoundTrip) -> None:
    project, run = clash.project, clash.update
    for path in (project / "bin/clash", project / "runtime/src/nexo_plugin_runtime/frames.py"):
        text = path.read_text()
        assert "<<<<<<< before updating" in text, path
        assert ">>>>>>> after updating" in text, path
    # What the author sees: git's own check fails on the leftover markers, and the runtime
    # check names the file.
    check = subprocess.run(["git", "diff", "--check"], cwd=project, capture_output=True, text=True)
    assert run.returncode != 0 or check.returncode != 0
    assert "leftover conflict marker" in check.stdout
    refused = subprocess.run(  # bin/clash has markers: main.py, which is the author's, runs it
        [sys.executable, "-m", "clash.main", "--check"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project / 'runtime/src'}"},
    )
    assert "runtime/src/nexo_plugin_runtime/frames.py differs" in refused.stderr


def test_an_update_that_conflicts_names_it_and_fails_its_checks(tmp_path: Path) -> None:
    """The fleet's odd one out: an author edited a file the template owns."""
    template, project = render_v1(tmp_path, "plugin_id=torn", synced=False)
    append(project / "runtime/src/nexo_plugin_runtime/frames.py", "# the author's runtime line\n")
    commit_all(project, "author edits the runtime")
    release_v2(template)
    run, body = update_script(project)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "conflict in runtime/src/nexo_plugin_runtime/frames.py" in run.stderr
    assert "Resolve these, commit, and mark the pull request ready:" in body
    assert "- `runtime/src/nexo_plugin_runtime/frames.py`" in body
    # Its checks fail, naming the file: the pull request stays a draft.
    assert "- [ ] `bin/torn --check`" in body
    assert "runtime/src/nexo_plugin_runtime/frames.py differs" in body
    # Committed as it is, markers included, so that the pull request shows them.
    assert git(project, "branch", "--show-current").strip() == "template-update"
    assert "<<<<<<< before updating" in git(
        project, "show", "HEAD:runtime/src/nexo_plugin_runtime/frames.py"
    )


def test_a_plugin_on_the_newest_release_is_left_alone(tmp_path: Path) -> None:
    _, project = render_v1(tmp_path, "plugin_id=current", synced=False)
    run, body = update_script(project)
    assert run.returncode == 0, run.stderr
    assert "v1.0.0 is the newest release of" in run.stdout
    assert body == ""
    assert git(project, "branch", "--show-current").strip() == "main"
