"""The generated GitHub workflows: offline linters, then their structure, loaded as YAML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import Project
from workflow_lint import actionlint, assert_clean, zizmor

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: \S+ # v\d+\.\d+\.\d+$")


def workflow(project: Project, name: str) -> dict:
    return yaml.safe_load((project.path / ".github/workflows" / name).read_text(encoding="utf-8"))


def trigger(document: dict) -> dict:
    return document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as True


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


# -- offline linters --------------------------------------------------------------------


def test_zizmor_actionlint_and_schemas_find_nothing(project: Project) -> None:
    assert_clean(project.path / ".github")


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
    linted = actionlint(bad).stdout
    assert "SC2086" in linted  # shellcheck ran


# -- release.yml -----------------------------------------------------------------------


def test_release_runs_on_version_tags_only(project: Project) -> None:
    release = workflow(project, "release.yml")
    assert trigger(release) == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {}
    assert release["concurrency"]["cancel-in-progress"] is False


def test_release_jobs_and_their_least_permissions(project: Project) -> None:
    jobs = workflow(project, "release.yml")["jobs"]
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "test": {"contents": "read"},
        "pack": {"contents": "read"},
        "sign": {"contents": "read", "id-token": "write"},
        "attest": {"id-token": "write", "attestations": "write"},
        "release": {"contents": "write"},
    }
    assert all(job.get("name") for job in jobs.values())
    assert jobs["pack"]["needs"] == "test"
    assert jobs["sign"]["needs"] == "pack" and jobs["attest"]["needs"] == "pack"
    # Signing is unconditional, and nothing can skip the release job past it.
    assert jobs["release"]["needs"] == ["pack", "sign", "attest"]
    assert not any("if" in job for job in jobs.values())


def run_lines(job: dict) -> list[str]:
    return [step["run"] for step in steps(job) if "run" in step]


def test_release_steps_call_the_project_scripts(project: Project) -> None:
    jobs = workflow(project, "release.yml")["jobs"]
    assert 'python scripts/pack_tarball.py --check-tag "$GITHUB_REF_NAME"' in run_lines(
        jobs["test"]
    )
    assert "python -m pytest" in run_lines(jobs["test"])
    assert "--check-reproducible" in "\n".join(run_lines(jobs["pack"]))
    sign = run_lines(jobs["sign"])
    assert 'cosign sign-blob --yes --bundle "dist/$TARBALL.sigstore.json" "dist/$TARBALL"' in sign
    assert 'python3 scripts/split_bundle.py "dist/$TARBALL.sigstore.json"' in sign
    installer = next(s for s in steps(jobs["sign"]) if "cosign-installer" in s.get("uses", ""))
    assert installer["with"]["cosign-release"].startswith("v3.")
    attest = next(
        s for s in steps(jobs["attest"]) if s.get("uses", "").startswith("actions/attest@")
    )
    assert attest["with"]["subject-path"] == "dist/*.tar.gz"


def test_release_is_published_draft_first_with_every_asset(project: Project) -> None:
    commands = run_lines(workflow(project, "release.yml")["jobs"]["release"])
    assert [command.split()[:3] for command in commands] == [
        ["gh", "release", "create"],
        ["gh", "release", "upload"],
        ["gh", "release", "edit"],
    ]
    assert "--draft" in commands[0].split() and "--verify-tag" in commands[0].split()
    assert "--clobber" not in " ".join(commands)
    uploaded = [word.strip('"') for word in commands[1].split()[4:]]
    assert uploaded == [
        "dist/$TARBALL",
        "dist/$TARBALL.sha256",
        "dist/$TARBALL.sig",
        "dist/$TARBALL.cert",
        "dist/$TARBALL.pem",
        "dist/$TARBALL.sigstore.json",
        "dist/nexo-plugin.toml",
    ]
    assert commands[2].split()[-1] == "--draft=false"


# -- both workflows --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["release.yml", "ci.yml"])
def test_hardening(project: Project, name: str) -> None:
    text = (project.path / ".github/workflows" / name).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    assert document["permissions"] == {} and document.get("name")
    for job in document["jobs"].values():
        assert "permissions" in job and job.get("name")
        for step in steps(job):
            assert "${{" not in step.get("run", ""), "expressions belong in env:, not in run:"
            uses = step.get("uses")
            if uses:
                assert SHA_PIN.match(uses), uses
            if uses and uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            assert "cache" not in step.get("with", {})
    uses_lines = [line.strip().removeprefix("- ") for line in text.splitlines() if "uses:" in line]
    assert uses_lines and all(VERSION_COMMENT.search(line) for line in uses_lines), uses_lines


# -- ci.yml and dependabot.yml ---------------------------------------------------------


def test_ci_lints_tests_on_oldest_and_newest_python_and_packs(project: Project) -> None:
    ci = workflow(project, "ci.yml")
    assert set(trigger(ci)) == {"push", "pull_request"}
    jobs = ci["jobs"]
    assert {"ruff check --output-format=github .", "ruff format --check --diff ."} <= set(
        run_lines(jobs["lint"])
    )
    versions = jobs["test"]["strategy"]["matrix"]["python"]
    assert versions == sorted({project.answers["python_min"], "3.13"})
    assert "python -m pytest" in run_lines(jobs["test"])
    assert "python scripts/pack_tarball.py --check-reproducible" in run_lines(jobs["pack"])


def test_dependabot_watches_actions_and_pip_with_a_cooldown(project: Project) -> None:
    config = yaml.safe_load((project.path / ".github/dependabot.yml").read_text())
    updates = {entry["package-ecosystem"]: entry for entry in config["updates"]}
    assert set(updates) == {"github-actions", "pip"}
    assert all(entry["cooldown"]["default-days"] >= 7 for entry in updates.values())
