"""git for the tests: commits, tags, and copies of this template as a repository of its own."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tarfile
import tempfile
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


def copy_working_tree(source: Path, dst: Path) -> Path:
    """The files git tracks or would track in `source`, as they are on disk, into `dst`."""
    listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if not (source / name).exists() and not (source / name).is_symlink():
            continue  # deleted in the working tree
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, dst / name, follow_symlinks=False)
    return dst


@functools.cache
def plain_template() -> Path:
    """This template (committed or not) copied once into a folder outside git: copier uses
    it in place instead of cloning it, so validating answers against it is quick."""
    return copy_working_tree(TEMPLATE_ROOT, Path(tempfile.mkdtemp(prefix="nexo-template-")))


@functools.cache
def questionnaire() -> Path:
    """The questions of this template (copier.yml and the jinja/ it includes) with only the
    answers file and the manifest to render: copier asks, validates and derives every
    answer as for the whole template, in a third of the time."""
    dst = Path(tempfile.mkdtemp(prefix="nexo-questions-"))
    shutil.copy2(TEMPLATE_ROOT / "copier.yml", dst)
    shutil.copytree(TEMPLATE_ROOT / "jinja", dst / "jinja")
    (dst / "template").mkdir()
    for name in ("{{ _copier_conf.answers_file }}.jinja", "nexo-plugin.toml.jinja"):
        shutil.copy2(TEMPLATE_ROOT / "template" / name, dst / "template")
    return dst


def template_copy(dst: Path, tag: str | None = "v1.0.0") -> Path:
    """This template (committed or not) as the root of a new git repository tagged `tag`:
    what a fork or a release looks like to copier."""
    copy_working_tree(TEMPLATE_ROOT, dst)
    git(dst, "init", "-q", "-b", "main")
    commit_all(dst, "template", tag)
    return dst


def export_commit(commit: str, dst: Path) -> Path:
    """The tree of this repository at `commit`, into `dst` (no .git)."""
    dst.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(TEMPLATE_ROOT), "archive", "--format=tar", commit], capture_output=True
    )
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tree:
        tree.extractall(dst, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    return dst


def replace_tree(repo: Path, source: Path, tag: str) -> None:
    """Commit `source`'s files as the whole tree of `repo`, tagged `tag`: the next release."""
    for path in repo.iterdir():
        if path.name == ".git":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if (source / ".git").exists():
        copy_working_tree(source, repo)
    else:
        shutil.copytree(source, repo, dirs_exist_ok=True, symlinks=True)
    commit_all(repo, f"release {tag}", tag)
