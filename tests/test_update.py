"""`copier update` from one tagged template version to the next, as a plugin author runs it."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from render import (
    commit_all,
    copier_cli,
    edit,
    find_python,
    git,
    install_dev_venv,
    read_answers,
    run_in,
    template_copy,
)

CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.M)
NEW_QUESTION = """
support_url:
  type: str
  help: Where operators report problems.
  default: "https://github.com/{{ github_owner }}/{{ github_repo }}/issues"
"""


@dataclass
class RoundTrip:
    template: Path
    project: Path
    update: subprocess.CompletedProcess[str]
    touched_by_author: set[str]


def render_v1(tmp: Path, *data: str) -> tuple[Path, Path]:
    template = template_copy(tmp / "template", "v1.0.0")
    project = tmp / "plugin"
    args = [arg for item in data for arg in ("--data", item)]
    run = copier_cli("copy", "--defaults", *args, str(template), str(project))
    assert run.returncode == 0, run.stderr
    git(project, "init", "-q", "-b", "main")
    commit_all(project, "generated from v1")
    return template, project


def release_v2(template: Path) -> None:
    """Template fixes across wiring, workflow, pack script and README, plus a new question."""
    edit(
        template / "template/src/{{ package_name }}/main.py",
        "print nexo-plugin.toml and exit",
        "print nexo-plugin.toml verbatim and exit",
    )
    edit(
        template / "template/.github/workflows/release.yml.jinja",
        "name: Sign the tarball\n",
        "name: Sign the tarball (cosign v3)\n",
    )
    edit(
        template / "template/scripts/pack_tarball.py",
        "packed twice: identical bytes",
        "packed twice: byte-identical",
    )
    edit(
        template / "template/README.md.jinja",
        "## Develop\n",
        "## Develop\n\nSupport: {{ support_url }}\n",
    )
    # Changes to the author's own files must not reach existing plugins.
    edit(
        template / "template/src/{{ package_name }}/handlers.py.jinja",
        '"echoed_from"',
        '"v2_echoed_from"',
    )
    (template / "copier.yml").write_text((template / "copier.yml").read_text() + NEW_QUESTION)
    commit_all(template, "v2: template fixes", "v2.0.0")


def author_edits(project: Path) -> set[str]:
    handlers = next(project.glob("src/*/handlers.py"))
    edit(handlers, '"echoed_payload"', '"payload_seen"')
    edit(project / "tests/test_handlers.py", '"echoed_payload"', '"payload_seen"')
    with (project / "README.md").open("a") as readme:
        readme.write("\n## Running it at ACME\n\nAsk the platform team for a daemon.\n")
    edit(
        project / "CHANGELOG.md",
        "## 0.1.0\n",
        "## 0.2.0\n\n- Renamed the echoed field.\n\n## 0.1.0\n",
    )
    commit_all(project, "author's changes")
    return {str(path.relative_to(project)) for path in (handlers,)} | {
        "tests/test_handlers.py", "README.md", "CHANGELOG.md"
    }  # fmt: skip


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> RoundTrip:
    template, project = render_v1(tmp_path_factory.mktemp("update"), "plugin_id=upd_plugin")
    touched = author_edits(project)
    release_v2(template)
    update = copier_cli("update", "--defaults", cwd=project)
    return RoundTrip(template, project, update, touched)


def test_update_runs_without_trust(round_trip: RoundTrip) -> None:
    assert round_trip.update.returncode == 0, round_trip.update.stderr
    assert read_answers(round_trip.project)["_commit"] == "v2.0.0"


def test_template_fixes_arrive(round_trip: RoundTrip) -> None:
    project = round_trip.project
    assert (
        "print nexo-plugin.toml verbatim and exit"
        in (project / "src/upd_plugin/main.py").read_text()
    )
    assert (
        "name: Sign the tarball (cosign v3)"
        in (project / ".github/workflows/release.yml").read_text()
    )
    assert "packed twice: byte-identical" in (project / "scripts/pack_tarball.py").read_text()
    # The pre-commit hooks follow the template version too.
    head = git(round_trip.template, "rev-parse", "v2.0.0").strip()
    assert f"rev: {head}  # v2.0.0" in (project / ".pre-commit-config.yaml").read_text()


def test_author_edits_survive(round_trip: RoundTrip) -> None:
    project = round_trip.project
    handlers = (project / "src/upd_plugin/handlers.py").read_text()
    assert '"payload_seen"' in handlers and "v2_echoed_from" not in handlers
    readme = (project / "README.md").read_text()
    assert "## Running it at ACME" in readme  # the author's section...
    assert (
        "Support: https://github.com/your-org/nexo-plugin-upd-plugin/issues" in readme
    )  # ...and v2's
    assert "## 0.2.0" in (project / "CHANGELOG.md").read_text()


def test_new_question_takes_its_default(round_trip: RoundTrip) -> None:
    answers = read_answers(round_trip.project)
    assert answers["support_url"] == "https://github.com/your-org/nexo-plugin-upd-plugin/issues"


def test_no_rejects_and_no_conflict_markers(round_trip: RoundTrip) -> None:
    project = round_trip.project
    assert not list(project.rglob("*.rej"))
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path


def test_updated_project_passes_its_own_checks(round_trip: RoundTrip) -> None:
    project = round_trip.project
    install_dev_venv(project, find_python("3.10") or "python3")
    for command in (
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("pytest", "-q", "-p", "no:cacheprovider"),
    ):
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
    main = project / "src/clash/main.py"
    edit(main, 'PROBE_FLAG = "--print-manifest"', 'PROBE_FLAG = "--print-manifest"  # author')
    commit_all(project, "author edits the wiring")
    edit(
        template / "template/src/{{ package_name }}/main.py",
        'PROBE_FLAG = "--print-manifest"',
        'PROBE_FLAG = "--print-manifest"  # template',
    )
    commit_all(template, "v2", "v2.0.0")
    run = copier_cli("update", "--defaults", cwd=project)
    text = main.read_text()
    assert "<<<<<<< before updating" in text and ">>>>>>> after updating" in text
    # What the author sees: git's own check fails on the leftover markers.
    check = subprocess.run(["git", "diff", "--check"], cwd=project, capture_output=True, text=True)
    assert run.returncode != 0 or check.returncode != 0
    assert "leftover conflict marker" in check.stdout
