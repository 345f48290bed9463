"""Packing a rendered project, and installing a tarball the way the nexo installer does."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

from environments import path_with_interpreters

EPOCH = "1700000000"


def pack(project: Path, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/pack_tarball.py of `project`, run in its own environment (this repository's
    when it has none: it has uv, packaging and the runtime), with every CPython of this
    machine at hand to compile bytecode with."""
    python = project / ".venv/bin/python"
    return subprocess.run(
        [
            str(python if python.exists() else sys.executable),
            "scripts/pack_tarball.py",
            "--out",
            str(out),
            *args,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PATH": path_with_interpreters(), **env},
        timeout=900,
    )


def install(tarball: Path, folder: Path) -> Path:
    """Extract like the installer (modes kept), then make the folder read-only."""
    folder.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return folder


def make_writable(folder: Path) -> None:
    """So that pytest can clean up after install()."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
