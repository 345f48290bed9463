"""The generated GitHub workflows: offline linters, then their structure, loaded as YAML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from projects import Project
from rendering import TEMPLATE_ROOT
from workflow_lint import actionlint, assert_clean, zizmor

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: \S+ # v\d+\.\d+\.\d+$")
PINNED_ACTIONS = (TEMPLATE_ROOT / "pins" / "action.yml").read_text()


pytestmark = pytest.mark.cases("echo", "tools")


def workflow(rendered: Project, name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (rendered.path / ".github/workflows" / name).read_text()
    )
    return document


def trigger(document: dict[Any, Any]) -> Any:
    return document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as True


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def run_lines(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in steps(job) if "run" in step]


# -- offline linters --------------------------------------------------------------------


def test_zizmor_actionlint_and_schemas_find_nothing(rendered: Project) -> None:
    assert_clean(rendered.path / ".github")


BAD_WORKFLOW = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ github.event.head_commit.message }} $UNQUOTED
"""


def test_the_linters_do_report_problems(tmp_path: Path) -> None:
    # A control: the same commands flag a workflow with the usual mistakes.
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)
    findings = zizmor(tmp_path / ".github").stdout
    for audit in ("unpinned-uses", "template-injection", "artipacked", "excessive-permissions"):
        assert audit in findings
    assert "SC2086" in actionlint(bad).stdout  # shellcheck ran


# -- release.yml -----------------------------------------------------------------------


def test_release_runs_on_version_tags_only(rendered: Project) -> None:
    release = workflow(rendered, "release.yml")
    assert trigger(release) == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {}
    assert release["concurrency"]["cancel-in-progress"] is False


def test_release_jobs_and_their_least_permissions(rendered: Project) -> None:
    jobs = workflow(rendered, "release.yml")["jobs"]
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "test": {"contents": "read"},
        "pack": {"contents": "read"},
        "sign": {"contents": "read", "id-token": "write"},
        "attest": {"id-token": "write", "attestations": "write"},
        "release": {"contents": "write"},
    }
    assert all(job.get("name") for job in jobs.values())
    assert jobs["pack"]["needs"] == "test"
    assert jobs["sign"]["needs"] == "pack"
    assert jobs["attest"]["needs"] == "pack"
    # Signing is unconditional, and nothing can skip the release job past it.
    assert jobs["release"]["needs"] == ["pack", "sign", "attest"]
    assert not any("if" in job for job in jobs.values())


def test_every_tarball_is_signed_and_attested(rendered: Project) -> None:
    jobs = workflow(rendered, "release.yml")["jobs"]
    tarballs = "${{ fromJSON(needs.pack.outputs.tarballs) }}"
    for name in ("sign", "attest"):
        assert jobs[name]["strategy"]["matrix"] == {"tarball": tarballs}
    assert jobs["pack"]["outputs"] == {"tarballs": "${{ steps.pack.outputs.tarballs }}"}
    pack_step = next(step for step in steps(jobs["pack"]) if step.get("id") == "pack")
    assert "--check-reproducible" in pack_step["run"]
    sign = run_lines(jobs["sign"])
    assert 'cosign sign-blob --yes --bundle "$TARBALL.sigstore.json" "$TARBALL"' in sign
    assert 'python3 scripts/split_bundle.py "$TARBALL.sigstore.json"' in sign
    installer = next(s for s in steps(jobs["sign"]) if "cosign-installer" in s.get("uses", ""))
    assert installer["with"]["cosign-release"].startswith("v3.")
    attests = [
        s["with"] for s in steps(jobs["attest"]) if s.get("uses", "").startswith("actions/attest@")
    ]
    assert attests == [
        {"subject-path": "dist/${{ matrix.tarball }}"},
        {
            "subject-path": "dist/${{ matrix.tarball }}",
            "sbom-path": "dist/${{ matrix.tarball }}.cdx.json",
        },
    ]


def test_release_checks_the_tag_and_tests_first(rendered: Project) -> None:
    test = workflow(rendered, "release.yml")["jobs"]["test"]
    lines = run_lines(test)
    assert lines[0] == "uv sync --locked"
    assert 'uv run python scripts/pack_tarball.py --check-tag "$GITHUB_REF_NAME"' in lines
    assert 'uv run pytest -m "slow or not slow"' in lines  # every test, the slow ones too
    assert test["env"] == {"UV_PYTHON": rendered.answers["python_min"]}


def test_release_is_published_draft_first_with_every_asset(rendered: Project) -> None:
    commands = run_lines(workflow(rendered, "release.yml")["jobs"]["release"])
    assert [command.split()[:3] for command in commands] == [
        ["gh", "release", "create"],
        ["gh", "release", "upload"],
        ["gh", "release", "edit"],
    ]
    assert "--draft" in commands[0].split()
    assert "--verify-tag" in commands[0].split()
    assert commands[1] == 'gh release upload "$GITHUB_REF_NAME" dist/*'
    assert "--clobber" not in " ".join(commands)
    assert commands[2].split()[-1] == "--draft=false"


# -- every workflow --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["release.yml", "ci.yml", "template-update.yml"])
def test_hardening(rendered: Project, name: str) -> None:
    path = rendered.path / ".github/workflows" / name
    if not path.exists():  # template-update.yml: only when the plugin takes its updates so
        assert rendered.answers.get("template_updates") in ("renovate", "none")
        return
    text = path.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    assert document["permissions"] == {}
    assert document.get("name")
    for job in document["jobs"].values():
        assert "permissions" in job
        assert job.get("name")
        for step in steps(job):
            assert "${{" not in step.get("run", ""), "expressions belong in env:, not in run:"
            uses = step.get("uses")
            if uses:
                assert SHA_PIN.match(uses), uses
                assert f"- uses: {uses} # " in PINNED_ACTIONS, f"{uses} is not from pins/action.yml"
            if uses and uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            if uses and uses.startswith("astral-sh/setup-uv@"):
                assert step["with"]["enable-cache"] is False, "no caches: cache poisoning"
    uses_lines = [line.strip().removeprefix("- ") for line in text.splitlines() if "uses:" in line]
    assert uses_lines
    assert all(VERSION_COMMENT.search(line) for line in uses_lines), uses_lines


# -- ci.yml and dependabot.yml ---------------------------------------------------------


def test_ci_lints_types_tests_every_python_on_linux_and_macos_and_packs(rendered: Project) -> None:
    ci = workflow(rendered, "ci.yml")
    assert set(trigger(ci)) == {"push", "pull_request", "workflow_dispatch"}
    jobs = ci["jobs"]
    assert {
        "uv run ruff check --output-format=github .",
        "uv run ruff format --check --diff .",
        "uv run mypy",
        f"bin/{rendered.plugin_id} --check",
    } <= set(run_lines(jobs["lint"]))
    matrix = jobs["test"]["strategy"]["matrix"]
    assert matrix["os"] == ["ubuntu-latest", "macos-latest"]
    minimum = int(rendered.answers["python_min"].split(".")[1])
    assert matrix["python"] == [f"3.{minor}" for minor in range(minimum, 15)]
    assert run_lines(jobs["test"]) == [
        "uv sync --locked",
        "uv run coverage run -m pytest",
        "uv run coverage report",
    ]
    # The slow tests: pack, install read-only, run, pack again and compare.
    assert "uv run pytest -m slow" in run_lines(jobs["pack"])


def test_dependabot_watches_actions_locked_packages_and_hooks(rendered: Project) -> None:
    config = yaml.safe_load((rendered.path / ".github/dependabot.yml").read_text())
    updates = {entry["package-ecosystem"]: entry for entry in config["updates"]}
    assert set(updates) == {"github-actions", "uv", "pre-commit"}
    assert all(entry["cooldown"]["default-days"] >= 7 for entry in updates.values())
    # ruff is a locked package and a pre-commit hook: one group moves both together.
    assert updates["uv"]["multi-ecosystem-group"] == updates["pre-commit"]["multi-ecosystem-group"]
    assert updates["github-actions"]["groups"]


# -- template updates --------------------------------------------------------------------


def test_template_updates_come_weekly_by_the_script_or_by_renovate(rendered: Project) -> None:
    chosen = rendered.answers["template_updates"]
    renovate = rendered.path / "renovate.json"
    update = rendered.path / ".github/workflows/template-update.yml"
    assert (renovate.exists(), update.exists()) == (chosen == "renovate", chosen == "workflow")
    if chosen == "renovate":
        assert yaml.safe_load(renovate.read_text())["enabledManagers"] == ["copier"]
        return
    document = workflow(rendered, "template-update.yml")
    assert {"schedule", "workflow_dispatch"} <= set(trigger(document))
    (job,) = document["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    (command,) = [line for line in run_lines(job) if "scripts/template_update.py" in line]
    assert "uv run python scripts/template_update.py --publish" in command
