"""The release tarball: scripts/pack_tarball.py output, checked against the nexo installer's
rules and run the way the daemon runs an installed plugin. Follows the template."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from host import (
    PROJECT_ROOT,
    PluginHost,
    assert_daemon_accepts,
    broker_event,
    read_manifest,
    read_toml,
)

EPOCH = "1700000000"


def run_pack(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "pack_tarball.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **env},
        timeout=300,
    )


def copy_project(dst: Path) -> Path:
    """The project's sources, without environments, caches or earlier builds."""
    ignored = shutil.ignore_patterns(".venv", "dist", "__pycache__", ".*_cache", ".git")
    shutil.copytree(PROJECT_ROOT, dst, ignore=ignored)
    return dst


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run = run_pack(PROJECT_ROOT, "--out", str(out))
    assert run.returncode == 0, run.stderr
    (built,) = out.glob("*.tar.gz")
    return built


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
        if "__pycache__" in parts or member.name.endswith(".pyc") or parts[0] == "tests":
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


def test_tarball_follows_the_installer_rules(tarball: Path) -> None:
    plugin = read_manifest()["plugin"]
    assert tarball.name == f"{plugin['id']}-{plugin['version']}-noarch.tar.gz"
    assert installer_problems(tarball, plugin["id"]) == []
    with tarfile.open(tarball, "r:gz") as archive:
        manifest = archive.extractfile("nexo-plugin.toml").read()
        names = archive.getnames()
    assert manifest == (PROJECT_ROOT / "nexo-plugin.toml").read_bytes()
    assert f"lib/{plugin['id']}/handlers.py" in names
    assert "lib/nexo_plugin_sdk/__init__.py" in names
    # The SDK needs tomli below Python 3.11: vendored when the project supports 3.10.
    requires_python = read_toml(PROJECT_ROOT / "pyproject.toml")["project"]["requires-python"]
    assert any(name.startswith("lib/tomli/") for name in names) == (requires_python == ">=3.10")


@pytest.fixture
def installed(tarball: Path, tmp_path: Path) -> Path:
    """The tarball extracted like the installer does, then made read-only."""
    folder = tmp_path / "plugins" / read_manifest()["plugin"]["id"]
    folder.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


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
        **os.environ,
        "PATH": f"{foreign / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(pythonpath),
        "PYTHONSTARTUP": str(pythonpath / "sitecustomize.py"),
    }


def snapshot(folder: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in folder.rglob("*")}


def test_installed_plugin_runs_read_only_under_a_hostile_environment(
    installed: Path, tmp_path: Path
) -> None:
    plugin_id = read_manifest()["plugin"]["id"]
    kind = read_manifest()["plugin"]["channels"]["register"][0]["kind"]
    before = snapshot(installed)
    elsewhere = tmp_path / "daemon-cwd"
    elsewhere.mkdir()
    command = [str(installed / "bin" / plugin_id)]
    with PluginHost(command, cwd=elsewhere, env=hostile_environment(tmp_path)) as host:
        assert host.initialize()["manifest"]["plugin"]["id"] == plugin_id
        sent = broker_event(f"plugin.outbound.{kind}", {"text": "installed"})
        host.notify("broker.event", sent)
        event = assert_daemon_accepts(host.next_notification("broker.publish")["params"], plugin_id)
        assert event["session_id"] == sent["event"]["session_id"]
        assert host.request("shutdown")["result"] == {"ok": True}
        assert host.wait() == 0, host.log()
        assert "foreign" not in host.stderr()
    assert snapshot(installed) == before, "the plugin wrote into its installed folder"


def test_installed_print_manifest_is_verbatim(installed: Path, tmp_path: Path) -> None:
    plugin_id = read_manifest()["plugin"]["id"]
    run = subprocess.run(
        [str(installed / "bin" / plugin_id), "--print-manifest"],
        cwd=tmp_path,
        env=hostile_environment(tmp_path),
        stdin=subprocess.PIPE,
        capture_output=True,
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == (installed / "nexo-plugin.toml").read_bytes()


def test_pack_is_reproducible(tmp_path: Path) -> None:
    digests = []
    for index, mtime in enumerate((1_000_000_000, 1_600_000_000)):
        project = copy_project(tmp_path / f"copy{index}")
        for path in project.rglob("*"):
            os.utime(path, (mtime, mtime))
        run = run_pack(project)
        assert run.returncode == 0, run.stderr
        digests.append([p.read_bytes() for p in sorted((project / "dist").iterdir())])
    assert digests[0] == digests[1]


def write_wheel(folder: Path, name: str, files: dict[str, str]) -> None:
    """A minimal wheel, tagged pure-Python whatever it contains."""
    info = f"{name}-1.0.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/RECORD": "",
    }
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


def add_dependency(project: Path, requirement: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        text.replace("dependencies = [", f'dependencies = [\n    "{requirement}",')
    )


def forget_the_tomli_pin(project: Path) -> None:
    """Support Python 3.10 without pinning the tomli the SDK needs there."""
    pyproject = project / "pyproject.toml"
    text = re.sub(
        r'requires-python = ">=3\.\d+"', 'requires-python = ">=3.10"', pyproject.read_text()
    )
    pyproject.write_text(re.sub(r"(?m)^.*tomli==.*\n", "", text))


def test_native_extension_is_refused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "fastthing", {"fastthing/__init__.py": "", "fastthing/_speed.so": "ELF"})
    project = copy_project(tmp_path / "project")
    add_dependency(project, "fastthing==1.0")
    run = run_pack(project, PIP_FIND_LINKS=str(wheels))
    assert run.returncode == 1
    assert "fastthing 1.0 ships a native extension (fastthing/_speed.so)" in run.stderr
    assert "noarch" in run.stderr
    assert not (project / "dist").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: (p / "nexo-plugin.toml").write_text("[plugin\n"), "not valid TOML"),
        (
            lambda p: replace(p / "nexo-plugin.toml", r'(?m)^version = ".*"$', 'version = "1.0"'),
            "is not a semantic version",
        ),
        (
            lambda p: replace(p / "nexo-plugin.toml", r"\[plugin\.meta\]", "\\g<0>\nowner = 1"),
            "unknown key 'owner' in [plugin.meta]",
        ),
        (lambda p: next((p / "bin").iterdir()).unlink(), "is missing: the daemon starts"),
        (lambda p: add_dependency(p, "requests>=2"), "is not pinned to one version"),
        (forget_the_tomli_pin, "which pyproject.toml does not pin"),
    ],
    ids=["bad-toml", "not-semver", "unknown-key", "no-launcher", "unpinned", "transitive"],
)
def test_bad_projects_fail_with_a_clear_message(tmp_path: Path, change, message: str) -> None:
    project = copy_project(tmp_path / "project")
    change(project)
    run = run_pack(project)
    assert run.returncode == 1
    assert message in run.stderr
    assert not (project / "dist").exists()


def replace(path: Path, pattern: str, new: str) -> None:
    text, count = re.subn(pattern, new, path.read_text(encoding="utf-8"), count=1)
    assert count == 1, pattern
    path.write_text(text, encoding="utf-8")


def test_check_tag() -> None:
    version = read_manifest()["plugin"]["version"]
    assert run_pack(PROJECT_ROOT, "--check-tag", f"v{version}").returncode == 0
    wrong = run_pack(PROJECT_ROOT, "--check-tag", "v9.9.9")
    assert wrong.returncode == 1
    assert f"does not match nexo-plugin.toml version '{version}'" in wrong.stderr
