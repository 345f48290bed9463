"""Interpreters, and rendered projects set up the way their README says."""

from __future__ import annotations

import fcntl
import functools
import glob
import os
import shutil
import subprocess
from pathlib import Path

from git_repos import commit_all, git
from rendering import BIN, TEMPLATE_ROOT


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


def version_of(python: str) -> str:
    """The minor version of the interpreter `python`, such as "3.10"."""
    probe = [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


# The CPython minors the template supports (copier.yml's python_min choices).
SUPPORTED_PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]


@functools.cache
def interpreters() -> dict[str, str]:
    """{version: path} of the supported CPythons this machine has."""
    found = {version: find_python(version) for version in SUPPORTED_PYTHONS}
    return {version: path for version, path in found.items() if path}


def plain_path(*first: str) -> str:
    """PATH with the folders `first` ahead and without version managers' shims: looking for a
    Python this machine lacks, uv asks every shim, which costs each pack about a second."""
    kept = [
        folder for folder in os.environ["PATH"].split(os.pathsep) if Path(folder).name != "shims"
    ]
    return os.pathsep.join([*first, *kept])


def path_with_interpreters() -> str:
    """PATH with each supported CPython's folder first, so that `uv python find` (the pack's
    bytecode compilers) sees every one of them."""
    return plain_path(*(str(Path(path).parent) for path in interpreters().values()))


def tools_env(python: str) -> dict[str, str]:
    """Where a set-up project's own tools run here: a PATH like a machine with only the
    project's Python (its pack compiles bytecode for that one; tests/test_release_tarball.py
    packs with every Python)."""
    return {"PATH": plain_path(str(Path(python).parent))}


# One mypy cache for every project the tests set up, kept between runs: mypy rechecks each
# file whose contents differ from those it cached (each project's own), and reuses what it
# found in the same SDK, runtime and libraries. Its SQLite store takes one mypy at a time.
MYPY_CACHE = TEMPLATE_ROOT / ".mypy_cache" / "generated-plugins"


def run_mypy(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The project's own `mypy`, as its CI runs it, with the shared cache."""
    MYPY_CACHE.mkdir(parents=True, exist_ok=True)
    with (MYPY_CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return run_in(project, "mypy", env={**env, "MYPY_CACHE_DIR": str(MYPY_CACHE)})


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


def run_in(
    project: Path, *command: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool of the project's own environment inside the project (with `env` added)."""
    return subprocess.run(
        [str(project / ".venv" / "bin" / command[0]), *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )
