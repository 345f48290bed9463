"""An organisation's fork: its defaults, changed in copier.yml's marked block, reach every
file of a plugin generated from the fork with nothing but a plugin id."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from git_repos import commit_all, git, template_copy
from rendering import copier_cli, parse_toml, read_answers, read_toml

ORG_DEFAULTS = {
    "org_github_owner": "acme-robotics",
    "org_author_name": "ACME Robotics",
    "org_author_email": "plugins@acme.example",
    "org_license": "Apache-2.0",
    "org_trust_mode": "warn",
    "org_trust_policy": "ACME operators verify every plugin release.",
    "org_runner": "acme-linux-x64",
    "org_macos_runner": "acme-macos-arm64",
}


def default_line(value: str) -> Callable[[re.Match[str]], str]:
    """The replacement of a question's default line: `value`, quoted for YAML."""
    return lambda match: f"{match.group(1)}{value!r}\n"


@pytest.mark.slow
def test_fork_defaults_reach_the_generated_plugin(tmp_path: Path) -> None:
    fork = template_copy(tmp_path / "fork", "v1.0.0")
    copier_yml = fork / "copier.yml"
    block = re.search(
        r"# ==== Organisation defaults =+\n(.*?)# ==== End", copier_yml.read_text(), re.S
    )
    assert block
    assert set(yaml.safe_load(block.group(1))) == set(ORG_DEFAULTS)
    text = copier_yml.read_text()
    for name, value in ORG_DEFAULTS.items():
        # The default line of each question, with any folded continuation lines.
        pattern = rf"(?m)^({name}:\n(?:  .*\n)*?  default: ).*\n(?:    .*\n)*"
        text, count = re.subn(pattern, default_line(value), text)
        assert count == 1, name
    copier_yml.write_text(text)
    commit_all(fork, "ACME defaults", "v1.1.0")

    project = tmp_path / "plugin"
    run = copier_cli(
        "copy", "--defaults", "--data", "plugin_id=acme_thing", str(fork), str(project)
    )
    assert run.returncode == 0, run.stderr

    meta = read_toml(project / "nexo-plugin.toml")["plugin"]["meta"]
    assert meta["author"] == "ACME Robotics"
    assert meta["license"] == "Apache-2.0"
    assert meta["repository"].startswith("https://github.com/acme-robotics/")
    pyproject = read_toml(project / "pyproject.toml")["project"]
    assert pyproject["authors"] == [{"name": "ACME Robotics", "email": "plugins@acme.example"}]
    assert pyproject["license"] == "Apache-2.0"
    assert (project / "LICENSE").read_text().split()[:2] == ["Apache", "License"]
    readme = (project / "README.md").read_text()
    assert "ACME operators verify every plugin release." in readme
    found = re.search(r"```toml\n(\[\[authors\]\].*?)```", readme, re.S)
    assert found
    entry = parse_toml(found.group(1))
    assert entry["authors"][0]["owner"] == "acme-robotics"
    assert entry["authors"][0]["mode"] == "warn"
    assert "acme-robotics" in entry["authors"][0]["identity_regexp"]
    assert (
        "/.github/workflows/release.yml @acme-robotics"
        in (project / ".github/CODEOWNERS").read_text()
    )
    runners = set()
    for workflow in ("release.yml", "ci.yml"):
        jobs = yaml.safe_load((project / ".github/workflows" / workflow).read_text())["jobs"]
        for job in jobs.values():
            runs_on = job["runs-on"]
            runners |= set(job["strategy"]["matrix"]["os"]) if "matrix.os" in runs_on else {runs_on}
    assert runners == {"acme-linux-x64", "acme-macos-arm64"}


def conflicts(project: Path) -> list[str]:
    """Files with conflict markers or left-over rejects after `copier update`."""
    unmerged = git(project, "diff", "--name-only", "--diff-filter=U").split()
    marked = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts and CONFLICT.search(path.read_bytes())
    ]
    return sorted({*unmerged, *marked, *(str(p) for p in project.rglob("*.rej"))})


CONFLICT = re.compile(rb"^(<<<<<<<|>>>>>>>) ", re.M)


@pytest.mark.slow
def test_a_plugin_moves_to_the_fork_and_follows_it_without_a_conflict(tmp_path: Path) -> None:
    upstream = template_copy(tmp_path / "upstream", "v1.0.0")
    project = tmp_path / "plugin"
    run = copier_cli(
        "copy", "--defaults", "--data", "plugin_id=moving", str(upstream), str(project)
    )
    assert run.returncode == 0, run.stderr
    git(project, "init", "-q", "-b", "main")
    commit_all(project, "generated")
    fork = tmp_path / "fork"
    git(tmp_path, "clone", "-q", str(upstream), str(fork))
    readme = fork / "template/README.md.jinja"
    readme.write_text(readme.read_text() + "\nACME: ask #plugins for help.\n")
    commit_all(fork, "ACME's fork", "v1.1.0")

    # The README's one command: the answers file names the fork, then copier update.
    answers = project / ".copier-answers.yml"
    answers.write_text(re.sub(r"(?m)^_src_path: .*$", f"_src_path: {fork}", answers.read_text()))
    commit_all(project, "Follow ACME's fork")
    run = copier_cli("update", "--defaults", cwd=project)
    assert run.returncode == 0, run.stderr
    assert conflicts(project) == []
    assert read_answers(project)["_commit"] == "v1.1.0"
    assert "ACME: ask #plugins for help." in (project / "README.md").read_text()
    assert str(upstream) not in (project / ".pre-commit-config.yaml").read_text()
    commit_all(project, "follow ACME's fork")

    readme.write_text(readme.read_text() + "ACME: v1.2.0.\n")
    commit_all(fork, "ACME's next release", "v1.2.0")
    run = copier_cli("update", "--defaults", cwd=project)
    assert run.returncode == 0, run.stderr
    assert conflicts(project) == []
    assert (project / "README.md").read_text().endswith("ACME: v1.2.0.\n")
