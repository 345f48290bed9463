"""The release of this plugin, as `nexo plugin install` takes it: packed, installed read-only
and run the way the daemon runs it. Slow (it packs for every supported Python): run with
`uv run pytest -m slow`; CI does. Follows the template, which tests the pack itself in depth.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nexo_plugin_runtime.testing import PluginHost, read_manifest

pytestmark = pytest.mark.slow

EPOCH = "1700000000"
MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
SYSTEMS = {"Linux": "unknown-linux-gnu", "Darwin": "apple-darwin"}
THIS_TARGET = f"{MACHINES.get(platform.machine())}-{SYSTEMS.get(platform.system())}"
TARGETS = {"x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "x86_64-apple-darwin",
           "aarch64-apple-darwin"}  # fmt: skip


def pack(project: Path, out: Path) -> list[Path]:
    run = subprocess.run(
        [sys.executable, str(project / "scripts" / "pack_tarball.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    return sorted(out.glob("*.tar.gz"))


@pytest.fixture(scope="module")
def tarballs(plugin_project: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return pack(plugin_project, tmp_path_factory.mktemp("dist"))


def installer_problems(tarball: Path, plugin_id: str) -> list[str]:
    """What `nexo plugin install` would refuse in this tarball."""
    problems = []
    if (
        Path(f"{tarball}.sha256").read_text()
        != hashlib.sha256(tarball.read_bytes()).hexdigest() + "\n"
    ):
        problems.append("the .sha256 sidecar does not match")
    with tarfile.open(tarball, "r:gz") as archive:
        members = archive.getmembers()
        if archive.pax_headers:
            problems.append("a pax global header")
    names = [member.name for member in members]
    if len(names) != len(set(names)) or len(names) > 10_000:
        problems.append("duplicate paths, or more than 10,000 entries")
    for member in members:
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            problems.append(f"unsafe path {member.name}")
        if not (member.isfile() or member.isdir()) or member.pax_headers:
            problems.append(f"{member.name} is not a plain file or folder")
        if member.mode not in ({0o755} if member.isdir() else {0o644, 0o755}):
            problems.append(f"{member.name} has mode {oct(member.mode)}")
        if parts[-1] == "nexo-plugin.toml" and member.name != "nexo-plugin.toml":
            problems.append(f"a second manifest, {member.name}")
    launcher = next((m for m in members if m.name == f"bin/{plugin_id}"), None)
    if "nexo-plugin.toml" not in names or launcher is None or launcher.mode != 0o755:
        problems.append(f"no nexo-plugin.toml, or no bin/{plugin_id} of mode 0755, at the root")
    return problems


def test_tarballs_follow_the_installer_rules(plugin_project: Path, tarballs: list[Path]) -> None:
    plugin = read_manifest(plugin_project)["plugin"]
    prefix = f"{plugin['id']}-{plugin['version']}-"
    targets = {tarball.name.removeprefix(prefix).removesuffix(".tar.gz") for tarball in tarballs}
    assert targets in ({"noarch"}, TARGETS)
    for tarball in tarballs:
        assert installer_problems(tarball, plugin["id"]) == [], tarball.name
        with tarfile.open(tarball, "r:gz") as archive:
            names = archive.getnames()
            manifest = archive.extractfile("nexo-plugin.toml")
            assert manifest is not None
            assert manifest.read() == (plugin_project / "nexo-plugin.toml").read_bytes()
        assert f"lib/{plugin['id']}/handlers.py" in names
        assert "lib/nexo_plugin_runtime/session.py" in names
        assert not [name for name in names if "/testing/" in name or name.startswith("tests/")]
        sbom = json.loads(Path(f"{tarball}.cdx.json").read_text())
        assert "nexoai" in {component["name"] for component in sbom["components"]}


def hostile_environment(tmp_path: Path) -> dict[str, str]:
    """An operator environment full of other copies of the SDK that must not be used."""
    broken = "raise ImportError('a foreign nexo_plugin_sdk was imported')\n"
    noisy = "print('foreign startup code ran')\n"
    pythonpath = tmp_path / "pythonpath"
    foreign = tmp_path / "foreign-venv"  # a python3 on PATH with its own SDK and hooks
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(foreign)], check=True)
    (site,) = foreign.glob("lib/python3*/site-packages")
    for folder in (pythonpath, site):
        (folder / "nexo_plugin_sdk").mkdir(parents=True)
        (folder / "nexo_plugin_sdk" / "__init__.py").write_text(broken)
        (folder / "sitecustomize.py").write_text(noisy)
    (site / "foreign.pth").write_text(f"import sys; exec({noisy!r})\n")
    return {
        "PATH": f"{foreign / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(pythonpath),
        "PYTHONSTARTUP": str(pythonpath / "sitecustomize.py"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


@pytest.fixture
def installed(plugin_project: Path, tarballs: list[Path], tmp_path: Path) -> Iterator[Path]:
    """The tarball for this machine, extracted like the installer does, then read-only."""
    (tarball,) = [
        t for t in tarballs if t.name.endswith(("-noarch.tar.gz", f"-{THIS_TARGET}.tar.gz"))
    ]
    folder = tmp_path / "plugins" / read_manifest(plugin_project)["plugin"]["id"]
    folder.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_installed_plugin_runs_read_only_under_a_hostile_environment(
    plugin_project: Path, installed: Path, tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    before = {str(path): path.stat().st_mtime for path in installed.rglob("*")}
    plugin_id = read_manifest(plugin_project)["plugin"]["id"]
    env = {**hostile_environment(tmp_path), **plugin_env}
    env[f"{plugin_id.upper()}_PYTHON"] = sys.executable
    link = tmp_path / "elsewhere" / plugin_id  # a symlink, as on an operator's PATH
    link.parent.mkdir()
    link.symlink_to(installed / "bin" / plugin_id)
    for launcher in (installed / "bin" / plugin_id, link):
        probe = subprocess.run([str(launcher), "--print-manifest"], capture_output=True, timeout=10)
        assert probe.stdout == (installed / "nexo-plugin.toml").read_bytes()
        with PluginHost([str(launcher)], project=plugin_project, cwd=tmp_path, env=env) as host:
            result: dict[str, Any] = host.initialize()
            assert result["manifest"] == read_manifest(plugin_project)
            assert host.request("shutdown")["result"] == {"ok": True}
            assert host.wait() == 0, host.log()
            assert "foreign" not in host.stderr()
    assert {str(path): path.stat().st_mtime for path in installed.rglob("*")} == before
    # The bytecode shipped for this Python served: nothing was compiled into the cache.
    assert list((tmp_path / "cache").rglob("*.pyc")) == []


def test_the_pack_is_reproducible(
    plugin_project: Path, tarballs: list[Path], tmp_path: Path
) -> None:
    """Another checkout of the same commit, other file times: the same bytes."""
    copy = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(plugin_project), str(copy)], check=True)
    for path in copy.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    again = pack(copy, tmp_path / "dist")
    assert [path.read_bytes() for path in again] == [path.read_bytes() for path in tarballs]
