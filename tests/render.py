"""Rendering the template and preparing rendered projects, shared by every test."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path
from typing import Any

import copier
import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The option matrix: one render (and one venv) per entry, on its minimum Python.
MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {"plugin_id": "echo_plugin"},
    "tool": {
        "plugin_id": "tool_plugin",
        "with_example_tool": True,
        "python_min": "3.13",
        "license": "Apache-2.0",
        "description": "Says \"hi\" and 'bye' with a back\\slash, ünïcødé — *not* <b>html</b>",
    },
    "long_id": {
        "plugin_id": "a_plugin_id_of_exactly_32_chars_",
        "with_example_tool": True,
        "python_min": "3.11",
        "license": "BSD-3-Clause",
        "channel_kind": "custom_kind",
    },
}


def render(dst: Path, **data: Any) -> Path:
    """Render the working tree (committed or not) of this template into dst."""
    copier.run_copy(
        str(TEMPLATE_ROOT),
        dst,
        data=data,
        defaults=True,
        vcs_ref="HEAD",
        unsafe=False,
        quiet=True,
    )
    return dst


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"git {' '.join(args)}: {run.stderr}"
    return run.stdout


def commit_all(repo: Path, message: str, tag: str | None = None) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    if tag:
        git(repo, "tag", tag)


def template_copy(dst: Path, tag: str = "v1.0.0") -> Path:
    """This template as it is on disk (committed or not), as the root of a new git repository
    tagged `tag`: what a fork or a release looks like to copier."""
    listed = git(TEMPLATE_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE_ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    git(dst, "init", "-q", "-b", "main")
    commit_all(dst, "template", tag)
    return dst


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact snippet; fail loudly when the file no longer has it."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path}: expected one {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def copier_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The `copier` command line, as a plugin author runs it."""
    return subprocess.run(
        [str(BIN / "copier"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def read_answers(project: Path) -> dict[str, Any]:
    """The answers copier recorded in the project."""
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def find_python(version: str) -> str | None:
    """A real interpreter for `version` (not a version-manager shim), or None."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python3")))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True
        )
        if probe.returncode == 0:
            return probe.stdout.strip()
    return None


def install_dev_venv(project: Path, python: str) -> Path:
    """project/.venv with the project and its `dev` dependency group, as `uv sync` would."""
    uv = str(BIN / "uv")
    subprocess.run([uv, "venv", "--quiet", "--python", python, ".venv"], cwd=project, check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            ".venv/bin/python",
            "--group",
            "dev",
            "-e",
            ".",
        ],
        cwd=project,
        check=True,
    )
    return project / ".venv"


def run_in(project: Path, *command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool of the project's own venv inside the project."""
    return subprocess.run(
        [str(project / ".venv" / "bin" / command[0]), *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
