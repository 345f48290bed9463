"""The pre-commit hooks in hooks/: on every rendered project, on broken manifests and noisy
code (together with the generated projects' ruff rules), and installed and run by pre-commit
itself from a tagged copy of this repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from git_repos import commit_all, git, plain_template, template_copy
from projects import Project
from rendering import BIN, TEMPLATE_ROOT, render, runtime_pins

HOOKS = TEMPLATE_ROOT / "hooks"


def hook(name: str, *files: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HOOKS / f"{name}.py"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rendered_projects_pass_both_hooks(rendered: Project) -> None:
    manifest = hook("nexo_manifest", rendered.path / "nexo-plugin.toml")
    assert manifest.returncode == 0, manifest.stderr
    stdout = hook("nexo_stdout", *sorted((rendered.path / "src").rglob("*.py")))
    assert stdout.returncode == 0, stdout.stdout


@pytest.mark.cases("echo")
def test_generated_scripts_carry_the_hooks_themselves(rendered: Project) -> None:
    for name in ("nexo_manifest.py", "nexo_stdout.py"):
        assert (rendered.path / "scripts" / name).read_bytes() == (HOOKS / name).read_bytes()


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

[plugin.supervisor]
respawn = true
max_attempts = 5
backoff_ms = 500
stderr_tail_lines = 64
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
        (
            'version = "1.2.3"',
            'version = "1.2.3\\n"',
            "plugin.version = '1.2.3\\n' is not a semantic version",
        ),
        ('id = "good"', 'id = "good\\n"', "plugin.id 'good\\n' must match"),
        ('">=0.1.0"', '"at least 0.1"', "is not a semver requirement"),
        (
            'description = "A plugin"',
            'description = "   "',
            "plugin.description must not be empty",
        ),
        (
            'command = "./bin/good"',
            'command = "./bin/good"\nenv = { NEXO_TOKEN = "x" }',
            "keys starting with NEXO_ are the daemon's",
        ),
        ('tools = ["good_echo"]', 'tools = ["other_echo"]', "must start with 'good_'"),
        ('version = "1.2.3"', "version = 1", "plugin.version = 1 must be a semantic version"),
        ("[plugin.extends]", "[plugin.extends", "not valid TOML"),
        ("[plugin]", "[plugin]\n[extra]", "unknown key 'extra' at the top level"),
        (
            "max_attempts = 5",
            'max_attempts = "5"',
            "plugin.supervisor.max_attempts = '5' must be a whole number",
        ),
        ("max_attempts = 5", "max_attempts = -1", "plugin.supervisor.max_attempts = -1 must be"),
        ("respawn = true", "respawn = 1", "plugin.supervisor.respawn = 1 must be true or false"),
        (
            "stderr_tail_lines = 64",
            "stderr_tail_lines = 600",
            "plugin.supervisor.stderr_tail_lines = 600 must be at most 512",
        ),
        ("backoff_ms = 500", "backoff_ms = 5.5", "plugin.supervisor.backoff_ms = 5.5 must be"),
        (
            "[plugin.supervisor]",
            "[plugin.config]\nhot_reload = 'yes'\n\n[plugin.supervisor]",
            "plugin.config.hot_reload = 'yes' must be true or false",
        ),
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


EVERY_SECTION = """
[plugin.capabilities]
provides = ["tools", "channels", "webhooks"]
skills = ["weekly-report"]
admin = { required = ["a"], optional = [] }
http_server = { port = 8080, token_env = "GOOD_TOKEN" }

[plugin.tools]
expose = ["good_echo"]
deferred = ["good_echo"]

[plugin.advisors]
register = ["GoodAdvisor"]

[plugin.agents]
contributes_dir = "agents"
allow_override = true

[plugin.skills]
contributes_dir = "skills"

[plugin.config]
schema_path = "config.schema.json"
hot_reload = false

[[plugin.capability_gates.gate]]
extension = "good"
env_var = "GOOD_SEND"
kind = "Allowlist"
risk = "Critical"
effect = "Sends."

[plugin.ui.fields."good.token"]
label = "Token"
tags = ["auth"]
sensitive = true

[plugin.contracts]
provides = ["good_dispatch"]
consumes = []
"""


def test_nexo_manifest_accepts_every_section_the_daemon_accepts(tmp_path: Path) -> None:
    manifest = tmp_path / "nexo-plugin.toml"
    manifest.write_text(GOOD_MANIFEST + EVERY_SECTION)
    run = hook("nexo_manifest", manifest)
    assert run.returncode == 0, run.stderr
    # The one key of the newer contract is let through, and said.
    assert "note: [plugin.extends] is refused by nexo daemons up to 0.1.5" in run.stderr


# Twenty ways plugin code can write to stdout, each on its own line: the generated project's
# ruff (T201 print, TID251 sys.stdout and sys.__stdout__ however reached) and the nexo-stdout
# hook (descriptor 1 and stdout's paths) together flag every one.
NOISY = """\
import io
import json
import logging
import os
import sys
import sys as system
from sys import stdout  # 1
from sys import stdout as out  # 2

print("hello")  # 3
print("to nowhere", file=None)  # 4
print("explicitly", file=sys.stdout)  # 5
sys.stdout.write("x")  # 6
sys.__stdout__.writelines(["x"])  # 7
sys.stdout.buffer.write(b"x")  # 8
system.stdout.write("x")  # 9
logging.basicConfig(stream=sys.stdout)  # 10
logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))  # 11
json.dump({}, sys.stdout)  # 12
os.write(1, b"x")  # 13
open(1, "w").write("x")  # 14
io.open(1, "wb").write(b"x")  # 15
os.fdopen(1, "w").write("x")  # 16
open("/dev/stdout", "w").write("x")  # 17
io.FileIO("/proc/self/fd/1", "w").write(b"x")  # 18
os.dup2(os.open("log.txt", os.O_WRONLY), 1)  # 19
os.writev(1, [b"x"])  # 20
stdout.write("x")
out.flush()
os.write(2, b"fine: stderr")
logging.getLogger().addHandler(logging.StreamHandler())
os.write(1, b"on purpose")  # nexo: allow-stdout
"""


@pytest.mark.cases("echo")
def test_ruff_and_the_hook_flag_all_twenty_ways_to_write_to_stdout(rendered: Project) -> None:
    project = rendered  # its ruff rules, with the plugins' ruff (the same version here)
    noisy = project.package / "noisy.py"
    noisy.write_text(NOISY)
    try:
        linted = subprocess.run(
            [
                str(BIN / "ruff"),
                "check",
                "--output-format=concise",
                "--no-cache",
                str(noisy.relative_to(project.path)),
            ],
            cwd=project.path,
            capture_output=True,
            text=True,
        )
        hooked = hook("nexo_stdout", noisy)
    finally:
        noisy.unlink()
    flagged = {
        int(line.split(":")[1])
        for line in (linted.stdout + hooked.stdout).splitlines()
        if line.startswith((str(noisy), str(noisy.relative_to(project.path))))
        and ("T201" in line or "TID251" in line or "on stdout" in line)
    }
    lines = NOISY.splitlines()
    expected = {
        number
        for number, line in enumerate(lines, 1)
        if line.rstrip().endswith(tuple(f"# {n}" for n in range(1, 21)))
    }
    assert len(expected) == 20
    assert expected <= flagged, sorted(expected - flagged)
    assert lines.index('os.write(2, b"fine: stderr")') + 1 not in flagged
    assert lines.index('os.write(1, b"on purpose")  # nexo: allow-stdout') + 1 not in flagged


def test_nexo_stdout_reads_any_encoding_and_reports_what_it_cannot_parse(tmp_path: Path) -> None:
    declared = tmp_path / "declared.py"
    declared.write_bytes(
        b'# -*- coding: latin-1 -*-\nimport os\nx = "caf\xe9"\nos.write(1, b"x")\n'
    )
    undeclared = tmp_path / "undeclared.py"
    undeclared.write_bytes(b'x = "caf\xe9"\n')
    run = hook("nexo_stdout", declared, undeclared)
    assert run.returncode == 1
    assert f"{declared}:4:1: os.write() on stdout" in run.stdout
    assert f"{undeclared}:1: cannot parse" in run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.cases("echo")
def test_hook_manifest_and_generated_config_are_valid(rendered: Project) -> None:
    project = rendered
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
    repos = {repo["repo"]: repo for repo in yaml.safe_load(config_path.read_text())["repos"]}
    local = {hook["id"]: hook for hook in repos["local"]["hooks"]}
    assert list(local) == ["nexo-manifest", "nexo-stdout", "nexo-check"]
    assert local["nexo-manifest"]["entry"] == "python scripts/nexo_manifest.py"
    assert local["nexo-stdout"]["entry"] == "python scripts/nexo_stdout.py"
    assert local["nexo-check"]["entry"] == f"bin/{project.plugin_id} --check"
    assert "runtime/" in local["nexo-check"]["files"]  # an edited runtime is refused
    merge = repos["https://github.com/pre-commit/pre-commit-hooks"]["hooks"][0]
    assert merge == {"id": "check-merge-conflict", "args": ["--assume-in-merge"]}
    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]["rev"]
    assert ruff == f"v{runtime_pins()['ruff']}", "the ruff hook and the dev extra's ruff differ"
    assert "https://github.com/zizmorcore/zizmor-pre-commit" in repos


@pytest.mark.slow
def test_pre_commit_installs_and_runs_the_hooks(tmp_path: Path) -> None:
    """The plugin's own local hooks as generated, and this repository as a hook repository
    for other plugins, side by side: each flags the same problems."""
    template = template_copy(tmp_path / "template", "v1.0.0")
    project = tmp_path / "plugin"
    render(project, template=plain_template(), plugin_id="hooked")
    # The local hooks, and the template's: the other repositories are not reachable here.
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    (local,) = [repo for repo in config["repos"] if repo["repo"] == "local"]
    assert [hook["id"] for hook in local["hooks"]] == ["nexo-manifest", "nexo-stdout", "nexo-check"]
    local["hooks"][2]["entry"] = "true"  # --check needs the project's environment
    hooks = [{"id": "nexo-manifest"}, {"id": "nexo-stdout"}]
    nexo = {"repo": str(template), "rev": "v1.0.0", "hooks": hooks}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [local, nexo]}))
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
    handlers.write_text(handlers.read_text() + '\nimport os\nos.write(1, b"debug")\n')
    manifest = project / "nexo-plugin.toml"
    manifest.write_text(manifest.read_text().replace('version = "0.1.0"', 'version = "0.1"'))
    noisy = run()
    assert noisy.returncode == 1
    assert noisy.stdout.count("src/hooked/handlers.py") == 2, noisy.stdout
    assert noisy.stdout.count("os.write() on stdout") == 2
    assert noisy.stdout.count("plugin.version = '0.1' is not a semantic version") == 2
