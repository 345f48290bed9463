"""Updates where the author edited files the template owns: the conflict is visible, by
`copier update` by hand or in the update branch that scripts/template_update.py makes, whose
checks then fail; and a plugin already on the newest release is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from git_repos import commit_all, git
from rendering import copier_cli, read_answers
from template_versions import (
    RoundTrip,
    append,
    release_v2,
    render_v1,
    update_script,
)

pytestmark = pytest.mark.slow

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
    assert "not run: an earlier check failed" in body  # the rest, as CI stops
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
