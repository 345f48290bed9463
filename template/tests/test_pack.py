"""The release tarballs: scripts/pack_tarball.py's output, checked against the nexo installer's
rules and run the way the daemon runs an installed plugin. Follows the template; nothing here
depends on what the plugin does with an event."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from host import PROJECT_ROOT, PluginHost, read_manifest

EPOCH = "1700000000"
MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
SYSTEMS = {"Linux": "unknown-linux-gnu", "Darwin": "apple-darwin"}
THIS_TARGET = f"{MACHINES.get(platform.machine())}-{SYSTEMS.get(platform.system())}"


def run_pack(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "pack_tarball.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **env},
        timeout=600,
    )


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    run = subprocess.run(command, cwd=project, capture_output=True, text=True, check=True)
    return run.stdout


def project_copy(dst: Path) -> Path:
    """The files git tracks here, as a fresh committed checkout (edits included)."""
    for name in filter(None, git(PROJECT_ROOT, "ls-files", "-z").split("\0")):
        if (PROJECT_ROOT / name).exists() or (PROJECT_ROOT / name).is_symlink():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, dst / name, follow_symlinks=False)
    git(dst, "init", "-q")
    commit(dst)
    return dst


def commit(project: Path) -> None:
    git(project, "add", "-A")
    git(project, "commit", "-q", "--allow-empty", "-m", "test")


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("dist")
    run = run_pack(PROJECT_ROOT, "--out", str(out))
    assert run.returncode == 0, run.stderr
    return sorted(out.glob("*.tar.gz"))


def bytecode_of_a_source(name: str, names: list[str]) -> bool:
    """`name` is <folder>/__pycache__/<module>.cpython-3X.pyc beside <folder>/<module>.py."""
    match = re.fullmatch(r"(.+)/__pycache__/([^/.]+)\.cpython-3\d+\.pyc", name)
    return match is not None and f"{match[1]}/{match[2]}.py" in names


def installer_problems(tarball: Path, plugin_id: str) -> list[str]:
    """What `nexo plugin install` would refuse in this tarball."""
    problems = []
    sidecar = Path(f"{tarball}.sha256").read_text(encoding="ascii")
    if sidecar != hashlib.sha256(tarball.read_bytes()).hexdigest() + "\n":
        problems.append(f"sha256 sidecar {sidecar!r} does not match")
    with tarfile.open(tarball, "r:gz") as archive:
        members = archive.getmembers()
        if archive.pax_headers:
            problems.append("pax global header")
    names = [member.name for member in members]
    if len(names) != len(set(names)):
        problems.append("duplicate paths")
    if len(names) > 10_000:
        problems.append("more than 10,000 entries")
    if sum(member.size for member in members) > 250 << 20 or tarball.stat().st_size > 100 << 20:
        problems.append("over the size limits")
    for member in members:
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            problems.append(f"unsafe path {member.name}")
        if not (member.isfile() or member.isdir()):
            problems.append(f"{member.name} is neither a file nor a directory")
        if member.pax_headers:
            problems.append(f"{member.name} has pax headers")
        wanted = {0o755} if member.isdir() else {0o644, 0o755}
        if member.mode not in wanted:
            problems.append(f"{member.name} has mode {oct(member.mode)}")
        if parts[0] == "tests" or (member.name.endswith(".pyc") and not bytecode_of_a_source(
            member.name, names
        )):  # fmt: skip
            problems.append(f"{member.name} does not belong in a release")
        if parts[-1] == "nexo-plugin.toml" and member.name != "nexo-plugin.toml":
            problems.append(f"second manifest {member.name}")
    by_name = {member.name: member for member in members}
    if "nexo-plugin.toml" not in by_name:
        problems.append("no nexo-plugin.toml at the root")
    launcher = by_name.get(f"bin/{plugin_id}")
    if launcher is None or launcher.mode != 0o755:
        problems.append(f"bin/{plugin_id} missing or not 0755")
    return problems


def test_tarballs_follow_the_installer_rules(tarballs: list[Path]) -> None:
    plugin = read_manifest()["plugin"]
    prefix = f"{plugin['id']}-{plugin['version']}-"
    targets = sorted(
        tarball.name.removeprefix(prefix).removesuffix(".tar.gz") for tarball in tarballs
    )
    assert targets in (
        ["noarch"],
        sorted(
            [
                "x86_64-unknown-linux-gnu",
                "aarch64-unknown-linux-gnu",
                "x86_64-apple-darwin",
                "aarch64-apple-darwin",
            ]
        ),
    )
    for tarball in tarballs:
        assert installer_problems(tarball, plugin["id"]) == [], tarball.name
        with tarfile.open(tarball, "r:gz") as archive:
            manifest = archive.extractfile("nexo-plugin.toml")
            assert manifest is not None
            assert manifest.read() == (PROJECT_ROOT / "nexo-plugin.toml").read_bytes()
            names = archive.getnames()
        assert f"lib/{plugin['id']}/handlers.py" in names
        assert any(name.endswith("/nexo_plugin_sdk/__init__.py") for name in names)
        assert ("lib/TARGET" in names) == (targets != ["noarch"])


def test_each_tarball_has_an_sbom_of_what_it_vendors(tarballs: list[Path]) -> None:
    for tarball in tarballs:
        document = json.loads(Path(f"{tarball}.cdx.json").read_text())
        assert document["bomFormat"] == "CycloneDX"
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        assert document["metadata"]["component"]["hashes"] == [
            {"alg": "SHA-256", "content": digest}
        ]
        with tarfile.open(tarball, "r:gz") as archive:
            vendored = {
                tuple(part.removesuffix(".dist-info").rsplit("-", 1))
                for name in archive.getnames()
                for part in name.split("/")
                if part.endswith(".dist-info")
            }
        listed = {(c["name"].replace("-", "_"), c["version"]) for c in document["components"]}
        assert {(name.lower(), version) for name, version in vendored} == listed
        assert all(component["hashes"] for component in document["components"])


def install(tarballs: list[Path], folder: Path) -> Path:
    """The tarball for this machine, extracted like the installer does, then made read-only."""
    (tarball,) = [
        t for t in tarballs if t.name.endswith(("-noarch.tar.gz", f"-{THIS_TARGET}.tar.gz"))
    ]
    folder.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return folder


def make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def installed(tarballs: list[Path], tmp_path: Path) -> Iterator[Path]:
    folder = install(tarballs, tmp_path / "plugins" / read_manifest()["plugin"]["id"])
    yield folder
    make_writable(folder)


def hostile_environment(tmp_path: Path) -> dict[str, str]:
    """An operator environment full of other copies of the SDK that must not be used."""
    broken = "raise ImportError('a foreign nexo_plugin_sdk was imported')\n"
    noisy = "print('foreign startup code ran')\n"
    pythonpath = tmp_path / "pythonpath"
    # A python3 on PATH with its own broken SDK and startup hooks in site-packages.
    foreign = tmp_path / "foreign-venv"
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


def snapshot(folder: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in folder.rglob("*")}


def launchers(installed: Path, tmp_path: Path) -> list[Path]:
    """bin/<id>, and a symlink to it elsewhere (as on an operator's PATH)."""
    launcher = installed / "bin" / read_manifest()["plugin"]["id"]
    link = tmp_path / "elsewhere" / launcher.name
    link.parent.mkdir()
    link.symlink_to(launcher)
    return [launcher, link]


def test_installed_plugin_runs_read_only_under_a_hostile_environment(
    installed: Path, tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    before = snapshot(installed)
    daemon_cwd = tmp_path / "daemon-cwd"
    daemon_cwd.mkdir()
    env = {**hostile_environment(tmp_path), **plugin_env}
    for launcher in launchers(installed, tmp_path):
        with PluginHost([str(launcher)], cwd=daemon_cwd, env=env) as host:
            assert host.initialize()["manifest"] == read_manifest()
            assert host.request("shutdown")["result"] == {"ok": True}
            assert host.wait() == 0, host.log()
            assert "foreign" not in host.stderr()
    assert snapshot(installed) == before, "the plugin wrote into its installed folder"


def start_and_stop(folder: Path, env: dict[str, str]) -> None:
    with PluginHost([str(folder / "bin" / read_manifest()["plugin"]["id"])], env=env) as host:
        host.initialize()
        assert host.request("shutdown")["result"] == {"ok": True}
        assert host.wait() == 0, host.log()


def test_installed_plugin_loads_the_bytecode_it_ships(
    installed: Path, tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    """pack_tarball.py compiled for this Python: nothing is compiled at start, even the first."""
    lib = installed / "lib"
    shipped = list(lib.rglob(f"*.{sys.implementation.cache_tag}.pyc"))
    names = {path.relative_to(lib).as_posix() for path in shipped}
    plugin_id = read_manifest()["plugin"]["id"]
    tag = sys.implementation.cache_tag
    for module in (f"{plugin_id}/__pycache__/main", "nexo_plugin_sdk/__pycache__/__init__"):
        assert f"{module}.{tag}.pyc" in names
    for compiled in shipped:
        source = compiled.parent.parent / f"{compiled.name.split('.')[0]}.py"
        header = compiled.read_bytes()[:16]
        # PEP 552: this Python's magic number, unchecked hash-based, the source's hash.
        assert header[:4] == importlib.util.MAGIC_NUMBER, compiled
        assert header[4:8] == b"\1\0\0\0", compiled
        assert header[8:] == importlib.util.source_hash(source.read_bytes()), compiled
    start_and_stop(installed, {**hostile_environment(tmp_path), **plugin_env})
    assert list((tmp_path / "cache").rglob("*.pyc")) == []


def test_without_shipped_bytecode_the_user_cache_serves(
    tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    run = run_pack(PROJECT_ROOT, "--bytecode", "none", "--out", str(tmp_path / "dist"))
    assert run.returncode == 0, run.stderr
    folder = install(sorted((tmp_path / "dist").glob("*.tar.gz")), tmp_path / "plugin")
    try:
        assert list(folder.rglob("*.pyc")) == []
        start_and_stop(folder, {**hostile_environment(tmp_path), **plugin_env})
    finally:
        make_writable(folder)
    cache = tmp_path / "cache" / "nexo" / "bytecode"
    compiled = {path.name.split(".")[0] for path in cache.rglob("*.pyc")}
    assert {"main", "sdk_adapter", "handlers", "adapter"} <= compiled
    assert all(str(folder) in str(path) for path in cache.rglob("*.pyc"))
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_installed_print_manifest_is_verbatim(installed: Path, tmp_path: Path) -> None:
    for launcher in launchers(installed, tmp_path):
        run = subprocess.run(
            [str(launcher), "--print-manifest"],
            cwd=tmp_path,
            env={**os.environ, **hostile_environment(tmp_path / launcher.parent.name)},
            stdin=subprocess.PIPE,
            capture_output=True,
            timeout=10,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == (installed / "nexo-plugin.toml").read_bytes()


def test_pack_is_reproducible(tarballs: list[Path], tmp_path: Path) -> None:
    """Another checkout, other file times, another process: the same bytes."""
    project = project_copy(tmp_path / "copy")
    for path in project.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    run = run_pack(project)
    assert run.returncode == 0, run.stderr
    packed = {path.name: path.read_bytes() for path in (project / "dist").iterdir()}
    first = tarballs[0].parent
    assert packed == {path.name: path.read_bytes() for path in first.iterdir()}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return project_copy(tmp_path / "project")


def package(project: Path) -> Path:
    plugin_id: str = read_manifest()["plugin"]["id"]
    return project / "src" / plugin_id


def test_untracked_files_are_left_out(copy: Path) -> None:
    (package(copy) / ".env").write_text("TOKEN=secret\n")
    (package(copy) / ".handlers.py.swp").write_bytes(b"\0swap")
    run = run_pack(copy)
    assert run.returncode == 0, run.stderr
    assert "left out (not tracked by git)" in run.stderr
    for tarball in (copy / "dist").glob("*.tar.gz"):
        with tarfile.open(tarball) as archive:
            assert not [name for name in archive.getnames() if ".env" in name or ".swp" in name]


def test_every_problem_is_reported_in_one_run(copy: Path) -> None:
    (copy / "secret.txt").write_text("secret\n")
    (copy / "LICENSE").unlink()
    (copy / "LICENSE").symlink_to("secret.txt")
    (package(copy) / "_speedups.so").write_bytes(b"\x7fELF")
    commit(copy)
    run = run_pack(copy, SOURCE_DATE_EPOCH="abc")
    assert run.returncode == 1
    assert "LICENSE is a symlink" in run.stderr
    assert "_speedups.so is compiled code" in run.stderr
    assert "SOURCE_DATE_EPOCH='abc'" in run.stderr
    assert not (copy / "dist").exists()


def test_a_stale_lock_is_refused(copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = [", 'dependencies = [\n    "idna>=3",', 1)
    )
    commit(copy)
    run = run_pack(copy)
    assert run.returncode == 1
    assert "uv.lock does not match pyproject.toml: run `uv lock`" in run.stderr


def test_tools_out_of_step_with_the_manifest_are_refused(copy: Path) -> None:
    plugin_id = read_manifest()["plugin"]["id"]
    manifest = copy / "nexo-plugin.toml"
    text = manifest.read_text()
    ghost = f'"{plugin_id}_ghost"'
    if "[plugin.extends]" in text:
        text = text.replace("tools = [", f"tools = [{ghost}, ", 1)
    else:
        text = text.replace(
            "\n[plugin.meta]", f"\n[plugin.extends]\ntools = [{ghost}]\n\n[plugin.meta]"
        )
    manifest.write_text(text)
    commit(copy)
    run = run_pack(copy)
    assert run.returncode == 1
    assert f"['{plugin_id}_ghost']" in run.stderr
    assert "does not serve" in run.stderr


@pytest.mark.parametrize(
    ("pattern", "new", "message"),
    [
        (r"^\[plugin\]$", "[plugin", "not valid TOML"),
        (r'^version = ".*"$', 'version = "1.0"', "is not a semantic version"),
        (r"^\[plugin\.meta\]$", "[plugin.meta]\nowner = 1", "unknown key 'owner' in [plugin.meta]"),
    ],
    ids=["bad-toml", "not-semver", "unknown-key"],
)
def test_a_bad_manifest_is_refused_with_a_clear_message(
    copy: Path, pattern: str, new: str, message: str
) -> None:
    manifest = copy / "nexo-plugin.toml"
    manifest.write_text(re.sub(pattern, new, manifest.read_text(), count=1, flags=re.MULTILINE))
    run = run_pack(copy)
    assert run.returncode == 1
    assert message in run.stderr
    assert not (copy / "dist").exists()


def test_check_tag() -> None:
    version = read_manifest()["plugin"]["version"]
    assert run_pack(PROJECT_ROOT, "--check-tag", f"v{version}").returncode == 0
    wrong = run_pack(PROJECT_ROOT, "--check-tag", "v9.9.9")
    assert wrong.returncode == 1
    assert f"does not match nexo-plugin.toml version '{version}'" in wrong.stderr
