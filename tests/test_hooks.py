"""The pre-commit hooks in hooks/: on every rendered project, on broken manifests and noisy
code, and installed and run by pre-commit itself from a tagged copy of this repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import Project
from render import BIN, TEMPLATE_ROOT, commit_all, git, render, template_copy

HOOKS = TEMPLATE_ROOT / "hooks"


def hook(name: str, *files: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HOOKS / f"{name}.py"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rendered_projects_pass_both_hooks(project: Project) -> None:
    manifest = hook("nexo_manifest", project.path / "nexo-plugin.toml")
    assert manifest.returncode == 0, manifest.stderr
    sources = sorted((project.path / "src").rglob("*.py"))
    stdout = hook("nexo_stdout", *sources)
    assert stdout.returncode == 0, stdout.stdout


def test_generated_scripts_carry_the_hook_itself(project: Project) -> None:
    generated = project.path / "scripts/nexo_manifest.py"
    assert generated.read_bytes() == (HOOKS / "nexo_manifest.py").read_bytes()


GOOD_MANIFEST = """\
[plugin]
id = "good"
version = "1.2.3"
name = "Good"
description = "A plugin"
min_nexo_version = ">=0.1.0"

[plugin.entrypoint]
command = "./bin/good"

[[plugin.channels.register]]
kind = "good"
adapter = "good"

[plugin.extends]
tools = ["good_echo"]
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "Good"', 'name = "Good"\nauthor = "x"', "unknown key 'author' in [plugin]"),
        (
            "[plugin.entrypoint]",
            "[plugin.entrypoint]\ncwd = '.'",
            "unknown key 'cwd' in [plugin.entrypoint]",
        ),
        (
            'adapter = "good"',
            'adapter = "good"\ndescription = "x"',
            "unknown key 'description' in [plugin.channels.register[0]]",
        ),
        ('id = "good"', 'id = "Good-Plugin"', "plugin.id 'Good-Plugin' must match"),
        ('kind = "good"', 'kind = "' + "k" * 33 + '"', "plugin.channels.register[0].kind"),
        ('version = "1.2.3"', 'version = "v1.2.3"', "is not a semantic version"),
        ('">=0.1.0"', '"at least 0.1"', "is not a semver requirement"),
        (
            'description = "A plugin"',
            'description = "   "',
            "plugin.description must be a non-empty string",
        ),
        (
            'command = "./bin/good"',
            'command = "./bin/good"\nenv = { NEXO_TOKEN = "x" }',
            "keys starting with NEXO_ are reserved",
        ),
        ('tools = ["good_echo"]', 'tools = ["other_echo"]', "must start with 'good_'"),
        ('version = "1.2.3"', "version = 1", "plugin.version 1 is not a semantic version"),
        ("[plugin.extends]", "[plugin.extends", "not valid TOML"),
        ("[plugin]", "[plugin]\n[extra]", "unknown key 'extra' in [top level]"),
    ],
)
def test_nexo_manifest_names_each_problem(tmp_path: Path, old: str, new: str, message: str) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD_MANIFEST)
    assert hook("nexo_manifest", good).returncode == 0
    broken = tmp_path / "nexo-plugin.toml"
    assert old in GOOD_MANIFEST
    broken.write_text(GOOD_MANIFEST.replace(old, new, 1))
    run = hook("nexo_manifest", broken)
    assert run.returncode == 1
    assert message in run.stderr, run.stderr


NOISY = """\
import logging
import os
import sys

print("hello")
print("to stderr", file=sys.stderr)
print("explicitly stdout", file=sys.stdout)
sys.stdout.write("x")
sys.__stdout__.writelines(["x"])
sys.stdout.buffer.write(b"x")
os.write(1, b"x")
os.write(2, b"fine")
logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))
logging.getLogger().addHandler(logging.StreamHandler())
print("on purpose")  # nexo: allow-stdout
sys.stdout.flush()
"""


def test_nexo_stdout_flags_each_write_and_honours_the_allow_comment(tmp_path: Path) -> None:
    noisy = tmp_path / "noisy.py"
    noisy.write_text(NOISY)
    run = hook("nexo_stdout", noisy)
    assert run.returncode == 1
    flagged = [
        line.split(":")[1] for line in run.stdout.splitlines() if line.startswith(str(noisy))
    ]
    assert flagged == ["5", "7", "8", "9", "10", "11", "13"]
    assert "print() writes to stdout" in run.stdout
    assert "# nexo: allow-stdout" in run.stdout


def test_hook_manifest_and_generated_config_are_valid(project: Project) -> None:
    pre_commit = str(BIN / "pre-commit")
    manifest = subprocess.run(
        [pre_commit, "validate-manifest", str(TEMPLATE_ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
    )
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr
    config_path = project.path / ".pre-commit-config.yaml"
    config = subprocess.run(
        [pre_commit, "validate-config", str(config_path)], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    repos = yaml.safe_load(config_path.read_text())["repos"]
    assert repos[0]["repo"] == project.answers["_src_path"]
    assert [hook["id"] for hook in repos[0]["hooks"]] == ["nexo-manifest", "nexo-stdout"]


def test_pre_commit_installs_and_runs_the_hooks(tmp_path: Path) -> None:
    template = template_copy(tmp_path / "template", "v1.0.0")
    project = tmp_path / "plugin"
    render(project, plugin_id="hooked")
    # Only the nexo hooks: the ruff hooks' repository is not reachable from here.
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    config["repos"] = [{**config["repos"][0], "repo": str(template), "rev": "v1.0.0"}]
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(project, "init", "-q", "-b", "main")
    commit_all(project, "generated")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def run() -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "pre-commit"), "run", "--all-files", "--color", "never"]
        return subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=300
        )

    clean = run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    handlers = project / "src/hooked/handlers.py"
    handlers.write_text(handlers.read_text() + '\nprint("debug")\n')
    manifest = project / "nexo-plugin.toml"
    manifest.write_text(manifest.read_text().replace('version = "0.1.0"', 'version = "0.1"'))
    noisy = run()
    assert noisy.returncode == 1
    assert "src/hooked/handlers.py" in noisy.stdout and "print() writes to stdout" in noisy.stdout
    assert "plugin.version '0.1' is not a semantic version" in noisy.stdout
