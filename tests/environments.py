"""Interpreters, and rendered projects set up the way their README says."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from git_repos import commit_all, git
from rendering import BIN


def find_python(version: str) -> str | None:
    """A real interpreter for `version` (not a version-manager shim), or None."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python3")))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.executable)"],
                capture_output=True,
                text=True,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return probe.stdout.strip()
    return None


# The CPython minors the template supports (copier.yml's python_min choices).
SUPPORTED_PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]


@functools.cache
def interpreters() -> dict[str, str]:
    """{version: path} of the supported CPythons this machine has."""
    found = {version: find_python(version) for version in SUPPORTED_PYTHONS}
    return {version: path for version, path in found.items() if path}


def path_with_interpreters() -> str:
    """PATH with each supported CPython's folder first, ahead of version-manager shims, so
    that `uv python find` (the pack's bytecode compilers) sees every one of them."""
    folders = [str(Path(path).parent) for path in interpreters().values()]
    return os.pathsep.join([*folders, os.environ["PATH"]])


def uv(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "uv"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


def first_steps(project: Path, python: str) -> Path:
    """The README's first steps: git init, uv sync (the venv and uv.lock), commit. (Without
    compiling bytecode at install: the tests import a fraction of what would be compiled.)"""
    git(project, "init", "-q", "-b", "main")
    synced = uv("sync", "--quiet", "--no-compile-bytecode", "--python", python, cwd=project)
    assert synced.returncode == 0, synced.stderr
    commit_all(project, "Start the plugin")
    return project


def run_in(project: Path, *command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool of the project's own environment inside the project."""
    return subprocess.run(
        [str(project / ".venv" / "bin" / command[0]), *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        **kwargs,
    )
