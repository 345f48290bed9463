"""`copier update` as a plugin author runs it: between two tagged versions of this template,
and from the previous release of this template to this one.

Changes are appended (markers at the end of files), never written into the template's
sentences, so that rewording the template does not break these tests.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from environments import find_python, first_steps, run_in, uv
from git_repos import commit_all, export_commit, git, replace_tree, template_copy
from rendering import TEMPLATE_ROOT, copier_cli, read_answers

CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.M)
# The last release of this template before the author API moved to api.py: plugins
# generated from it must update and keep running with their handlers.py unchanged.
PREVIOUS_RELEASE = "7a42fa3"
NEW_QUESTION = """
support_url:
  type: str
  help: Where operators report problems.
  default: "https://github.com/{{ github_owner }}/{{ github_repo }}/issues"
"""
# What v2 appends to files that follow the template, and to one that is the author's.
FOLLOWING = {
    "template/src/{{ package_name }}/main.py": "# v2: main.py\n",
    "template/.github/workflows/release.yml.jinja": "# v2: release.yml\n",
    "template/scripts/pack_tarball.py": "# v2: pack_tarball.py\n",
    "template/README.md.jinja": "\nSupport: {{ support_url }}\n",
}
AUTHORS = {"shapes/echo/handlers.py.jinja": "# v2: handlers.py\n"}
PYTHON = find_python("3.10") or "python3"


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def render_v1(tmp: Path, *data: str) -> tuple[Path, Path]:
    """The template tagged v1.0.0, and a plugin from it after the README's first steps."""
    template = template_copy(tmp / "template", "v1.0.0")
    project = tmp / "plugin"
    args = [arg for item in data for arg in ("--data", item)]
    run = copier_cli("copy", "--defaults", *args, str(template), str(project))
    assert run.returncode == 0, run.stderr
    first_steps(project, PYTHON)
    return template, project


def release_v2(template: Path) -> None:
    for name, text in {**FOLLOWING, **AUTHORS}.items():
        append(template / name, text)
    append(template / "copier.yml", NEW_QUESTION)
    commit_all(template, "v2: template fixes", "v2.0.0")


def author_edits(project: Path) -> None:
    append(next(project.glob("src/*/handlers.py")), "\n\nAUTHOR_SETTING = 1\n")
    append(
        project / "tests/test_handlers.py", "\n\ndef test_the_author_s_own() -> None:\n    pass\n"
    )
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


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> RoundTrip:
    template, project = render_v1(tmp_path_factory.mktemp("update"), "plugin_id=upd_plugin")
    author_edits(project)
    release_v2(template)
    update = copier_cli("update", "--defaults", cwd=project)
    return RoundTrip(template, project, update)


def test_update_runs_without_trust_straight_after_the_first_steps(round_trip: RoundTrip) -> None:
    # The first steps commit uv.lock: the tree is clean, so copier update goes ahead.
    assert round_trip.update.returncode == 0, round_trip.update.stderr
    assert read_answers(round_trip.project)["_commit"] == "v2.0.0"
    assert (
        "now follows nexo-python-template v2.0.0"
        in round_trip.update.stdout + round_trip.update.stderr
    )


def test_template_fixes_arrive(round_trip: RoundTrip) -> None:
    project = round_trip.project
    assert (
        (project / "src/upd_plugin/main.py")
        .read_text()
        .endswith(FOLLOWING["template/src/{{ package_name }}/main.py"])
    )
    assert (project / ".github/workflows/release.yml").read_text().endswith("# v2: release.yml\n")
    assert (project / "scripts/pack_tarball.py").read_text().endswith("# v2: pack_tarball.py\n")
    # The pre-commit hooks follow the template version too.
    head = git(round_trip.template, "rev-parse", "v2.0.0").strip()
    assert f"rev: {head}  # v2.0.0" in (project / ".pre-commit-config.yaml").read_text()


def test_author_files_and_edits_survive(round_trip: RoundTrip) -> None:
    project = round_trip.project
    handlers = (project / "src/upd_plugin/handlers.py").read_text()
    assert "AUTHOR_SETTING = 1" in handlers
    assert "# v2: handlers.py" not in handlers
    assert "def test_the_author_s_own" in (project / "tests/test_handlers.py").read_text()
    readme = (project / "README.md").read_text()
    assert readme.startswith("<!-- ACME: ask the platform team")  # the author's line...
    assert "Support: https://github.com/your-org/nexo-plugin-upd-plugin/issues" in readme  # ...v2's
    assert (project / "CHANGELOG.md").read_text().startswith("# The author's changelog")


def test_new_question_takes_its_default(round_trip: RoundTrip) -> None:
    answers = read_answers(round_trip.project)
    assert answers["support_url"] == "https://github.com/your-org/nexo-plugin-upd-plugin/issues"


def test_no_rejects_and_no_conflict_markers(round_trip: RoundTrip) -> None:
    project = round_trip.project
    assert not list(project.rglob("*.rej"))
    for path in project.rglob("*"):
        if path.is_file() and not {".git", ".venv"} & set(path.parts):
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path


STATIC_CHECKS = (("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",))
TESTS = (("pytest", "-q", "-p", "no:cacheprovider"),)


def test_updated_project_passes_its_own_checks(round_trip: RoundTrip) -> None:
    checks_pass(round_trip.project, STATIC_CHECKS + TESTS)


def checks_pass(project: Path, commands: tuple[tuple[str, ...], ...]) -> None:
    """The steps after an update (_message_after_update): refresh the lock and the
    environment, then run `commands`."""
    for step in (("lock", "--quiet"), ("sync", "--quiet", "--python", PYTHON)):
        run = uv(*step, cwd=project)
        assert run.returncode == 0, run.stderr
    commit_all(project, "follow the template")
    for command in commands:
        run = run_in(project, *command)
        assert run.returncode == 0, run.stdout + run.stderr


def test_new_question_answered_with_data(tmp_path: Path) -> None:
    template, project = render_v1(tmp_path, "plugin_id=data_plugin")
    release_v2(template)
    url = "https://support.example.com/nexo"
    run = copier_cli("update", "--defaults", "--data", f"support_url={url}", cwd=project)
    assert run.returncode == 0, run.stderr
    assert read_answers(project)["support_url"] == url
    assert f"Support: {url}" in (project / "README.md").read_text()


def test_conflict_leaves_a_marker_and_a_failing_check(tmp_path: Path) -> None:
    template, project = render_v1(tmp_path, "plugin_id=clash")
    append(project / "src/clash/main.py", "# the author's line\n")
    commit_all(project, "author edits the wiring")
    append(template / "template/src/{{ package_name }}/main.py", "# the template's line\n")
    commit_all(template, "v2", "v2.0.0")
    run = copier_cli("update", "--defaults", cwd=project)
    text = (project / "src/clash/main.py").read_text()
    assert "<<<<<<< before updating" in text
    assert ">>>>>>> after updating" in text
    # What the author sees: git's own check fails on the leftover markers.
    check = subprocess.run(["git", "diff", "--check"], cwd=project, capture_output=True, text=True)
    assert run.returncode != 0 or check.returncode != 0
    assert "leftover conflict marker" in check.stdout


def test_a_plugin_of_the_previous_release_updates_and_its_handlers_run_unchanged(
    tmp_path: Path,
) -> None:
    known = subprocess.run(
        ["git", "-C", str(TEMPLATE_ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"]
    )
    if known.returncode != 0:
        pytest.skip(f"{PREVIOUS_RELEASE} is not in this clone's history")
    previous = export_commit(PREVIOUS_RELEASE, tmp_path / "previous")
    template = tmp_path / "template"
    template.mkdir()
    git(template, "init", "-q", "-b", "main")
    replace_tree(template, previous, "v0.9.0")
    project = tmp_path / "old_plugin"
    run = copier_cli(
        "copy",
        "--defaults",
        "--data",
        "plugin_id=old_plugin",
        "--data",
        "with_example_tool=true",
        str(template),
        str(project),
    )
    assert run.returncode == 0, run.stderr
    git(project, "init", "-q", "-b", "main")
    commit_all(project, "generated from the previous release")
    handlers = (project / "src/old_plugin/handlers.py").read_text()
    assert "from .runtime import InboundEvent, PluginContext" in handlers

    replace_tree(template, TEMPLATE_ROOT, "v1.0.0")
    update = copier_cli("update", "--defaults", cwd=project)
    assert update.returncode == 0, update.stderr
    assert (project / "src/old_plugin/handlers.py").read_text() == handlers
    assert (project / "src/old_plugin/api.py").exists()
    # Its handlers and its own tests run as they are. (The stricter lint and type checks
    # of this release then ask the author to annotate old code: a follow-up, not a break.)
    checks_pass(project, TESTS)
