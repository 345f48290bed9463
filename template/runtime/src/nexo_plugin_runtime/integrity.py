"""Unmodified, or told: the runtime's files against the template version the plugin follows.

runtime/ belongs to the template: `copier update` replaces it, and an edit made there would
be lost or conflict at the next update. runtime/FILES.sha256 (sha256sum's format, written
by the template) lists every file of it with its hash; `bin/<id> --check`, the pack and the
pre-commit hook refuse a runtime that differs from it, naming each file and the way out.
An installed plugin has no runtime/ folder: the pack checked it before it was packed.
"""

from __future__ import annotations

import hashlib
import os

RUNTIME_DIR = "runtime"
HASHES_FILE = "FILES.sha256"
# What tools leave in a source tree: never part of the runtime, never checked.
IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


def listed_hashes(runtime: str) -> dict[str, str]:
    """{path relative to runtime/: sha256} from FILES.sha256."""
    with open(os.path.join(runtime, HASHES_FILE), encoding="utf-8") as listing:
        pairs = (line.rstrip("\n").split("  ", 1) for line in listing if line.strip())
        return {path: digest for digest, path in pairs}


def present_files(runtime: str) -> list[str]:
    """Every file under runtime/ (relative, with "/"), but FILES.sha256 and tool caches."""
    found = []
    for folder, dirs, files in os.walk(runtime):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not d.endswith(".egg-info"))
        for name in files:
            path = os.path.relpath(os.path.join(folder, name), runtime).replace(os.sep, "/")
            if path != HASHES_FILE and not name.endswith(IGNORED_SUFFIXES):
                found.append(path)
    return sorted(found)


def file_hash(path: str) -> str:
    with open(path, "rb") as data:
        return hashlib.sha256(data.read()).hexdigest()


def runtime_problems(root: str) -> list[str]:
    """What differs between runtime/ under `root` and its FILES.sha256, each file named,
    then the way out; [] when they agree or there is no runtime/ (an installed plugin)."""
    runtime = os.path.join(root, RUNTIME_DIR)
    if not os.path.isdir(runtime):
        return []
    try:
        expected = listed_hashes(runtime)
    except (OSError, ValueError) as error:
        return [
            f"{RUNTIME_DIR}/{HASHES_FILE} cannot be read ({error}): take the template's copy "
            "back with `copier update` (or `git checkout -- runtime/`)"
        ]
    present = present_files(runtime)
    problems = [
        f"{RUNTIME_DIR}/{path} is missing from the runtime"
        for path in expected
        if path not in present
    ]
    for path in present:
        if path not in expected:
            problems.append(f"{RUNTIME_DIR}/{path} is not part of the template's runtime")
        elif file_hash(os.path.join(runtime, path)) != expected[path]:
            problems.append(
                f"{RUNTIME_DIR}/{path} differs from the runtime of the template version "
                "this plugin follows"
            )
    if problems:
        problems.append(
            "runtime/ follows the template, and `copier update` replaces it: move the change "
            "into your own code under src/, or take the template's runtime back with "
            "`copier update` (or `git checkout -- runtime/`)"
        )
    return problems


def hashes_listing(runtime: str) -> str:
    """The FILES.sha256 text for the files under `runtime` now (the template writes it)."""
    return "".join(
        f"{file_hash(os.path.join(runtime, path))}  {path}\n" for path in present_files(runtime)
    )
