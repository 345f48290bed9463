"""`nexo-dev --installed DIST`: the plugin as an operator gets it, from a packed tarball,
unpacked the installer's way into a read-only folder."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .session import UsageError

MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
SYSTEMS = {"Linux": "unknown-linux-gnu", "Darwin": "apple-darwin"}


def this_target() -> str:
    machine, system = platform.machine(), platform.system()
    return f"{MACHINES.get(machine.lower(), machine)}-{SYSTEMS.get(system, system)}"


def choose_tarball(dist: Path, plugin_id: str) -> Path:
    """`dist` itself, or the tarball in that folder the installer would take here: this
    machine's target build, else the noarch one (the newest if several)."""
    if dist.is_file():
        return dist
    if not dist.is_dir():
        raise UsageError(
            f"--installed {dist}: no such tarball or folder "
            "(pack one: uv run scripts/pack_tarball.py)"
        )
    for target in (this_target(), "noarch"):
        found = sorted(
            dist.glob(f"{plugin_id}-*-{target}.tar.gz"), key=lambda path: path.stat().st_mtime
        )
        if found:
            return found[-1]
    listing = ", ".join(sorted(path.name for path in dist.glob("*.tar.gz"))) or "none"
    raise UsageError(
        f"--installed {dist}: no {plugin_id}-<version>-{this_target()}.tar.gz nor -noarch.tar.gz "
        f"there (tarballs: {listing}); pack one: uv run scripts/pack_tarball.py"
    )


@contextlib.contextmanager
def unpacked(tarball: Path) -> Iterator[Path]:
    """The tarball unpacked into a temporary folder that nobody may write to, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="nexo-dev-installed-"))
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(folder, filter="data")
            else:  # Python before 3.10.12 and 3.11.4; the tarball is the author's own
                archive.extractall(folder)
        for path in [folder, *folder.rglob("*")]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                path.chmod(stat.S_IMODE(mode) & ~0o222)
        yield folder
    finally:
        for root, folders, _ in os.walk(folder):
            for name in [".", *folders]:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(folder, ignore_errors=True)
