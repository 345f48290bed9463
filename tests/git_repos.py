"""git for the tests: commits, tags, and copies of this template as a repository of its own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rendering import TEMPLATE_ROOT


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


def template_copy(dst: Path, tag: str = "v1.0.0", source: Path = TEMPLATE_ROOT) -> Path:
    """`source` (this template, committed or not) as the root of a new git repository tagged
    `tag`: what a fork or a release looks like to copier."""
    listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if not (source / name).exists() and not (source / name).is_symlink():
            continue  # deleted in the working tree
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, dst / name, follow_symlinks=False)
    git(dst, "init", "-q", "-b", "main")
    commit_all(dst, "template", tag)
    return dst
