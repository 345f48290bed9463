"""Release tarballs read back at the byte level, their layout per Python, the bytecode they
ship, and their SBOMs against the CycloneDX schema: what the generated project's own
tests/test_release.py checks through tarfile, checked here without it. The pack is the same
code for every combination: the echo plugin (no dependency but the SDK) and the one with
every capability (httpx and h11 too) show it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from environments import SUPPORTED_PYTHONS, interpreters
from git_repos import commit_all, git
from nexo_plugin_runtime.testing import PluginHost
from projects import Project
from releases import pack, release_verifier, signer_certificate
from rendering import TEMPLATE_ROOT, read_toml, runtime_pins

BLOCK = 512
pytestmark = pytest.mark.cases("echo", "webhook+poller+outbound+tools")


def ustar_members(tarball: Path) -> list[tuple[str, bytes, int]]:
    """(path, typeflag, mode) of every header block of the uncompressed archive."""
    data = gzip.decompress(tarball.read_bytes())
    members, offset = [], 0
    while offset + BLOCK <= len(data) and data[offset : offset + BLOCK].strip(b"\0"):
        header = data[offset : offset + BLOCK]
        assert header[257:265] == b"ustar\x0000", "not a plain POSIX ustar header"
        name = header[0:100].rstrip(b"\0").decode()
        prefix = header[345:500].rstrip(b"\0").decode()
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        mode = int(header[100:108].rstrip(b"\0 "), 8)
        assert header[108:116].rstrip(b"\0 ").lstrip(b"0") == b"", "uid is not 0"
        assert header[116:124].rstrip(b"\0 ").lstrip(b"0") == b"", "gid is not 0"
        members.append((f"{prefix}/{name}" if prefix else name, header[156:157], mode))
        offset += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
    return members


def test_a_pure_plugin_has_one_noarch_tarball(project: Project, tarballs: list[Path]) -> None:
    assert [tarball.name for tarball in tarballs] == [f"{project.plugin_id}-0.1.0-noarch.tar.gz"]


def test_gzip_header_carries_no_name_and_no_time(tarballs: list[Path]) -> None:
    for tarball in tarballs:
        header = tarball.read_bytes()[:10]
        assert header[:3] == b"\x1f\x8b\x08"
        assert header[3] & 0x08 == 0, "FNAME set: the file name would leak into the bytes"
        assert header[4:8] == b"\0\0\0\0", "gzip MTIME is not 0"


def test_sidecar_is_bare_lowercase_hex(tarballs: list[Path]) -> None:
    for tarball in tarballs:
        sidecar = Path(f"{tarball}.sha256").read_bytes()
        assert sidecar == hashlib.sha256(tarball.read_bytes()).hexdigest().encode() + b"\n"


def test_archive_layout(project: Project, tarballs: list[Path]) -> None:
    (tarball,) = tarballs
    members = ustar_members(tarball)
    paths = [path.rstrip("/") for path, _, _ in members]
    assert paths == sorted(paths)
    assert {kind for _, kind, _ in members} <= {b"0", b"5"}, "only files and directories"
    assert {path.split("/")[0] for path in paths} == {"nexo-plugin.toml", "bin", "lib", "LICENSE"}
    modes = {path.rstrip("/"): mode for path, _, mode in members}
    assert modes[f"bin/{project.plugin_id}"] == 0o755
    assert modes["lib"] == 0o755
    shared = {
        path.split("/")[1] for path in paths if path.startswith("lib/") and path.count("/") > 1
    }
    sdk = f"nexoai-{runtime_pins()['nexoai']}.dist-info"
    assert {project.plugin_id, "nexo_plugin_runtime", "nexo_plugin_sdk", sdk} <= shared
    # The runtime's test host and dev host are for the project, not the installed plugin;
    # the rest of the runtime is all there.
    runtime = {path.split("/")[2] for path in paths if path.startswith("lib/nexo_plugin_runtime/")}
    assert not runtime & {"testing", "devhost"}
    assert {"session.py", "process.py", "py.typed"} <= runtime
    # What only some Pythons need sits in lib/python3.X/: tomli and its kin below 3.11.
    minimum = int(project.answers["python_min"].split(".")[1])
    versions = {path.split("/")[1] for path in paths if path.startswith("lib/python3.")}
    alone = {path.split("/")[2] for path in paths if path.startswith("lib/python3.10/")}
    if minimum == 10:
        assert "python3.10" in versions
        assert "tomli" in alone
    else:
        assert not any(name.startswith("tomli") for name in shared | alone)
    assert all(int(version.split(".")[1]) >= minimum for version in versions)


def test_bytecode_is_shipped_for_every_python_the_pack_found(
    project: Project, tarballs: list[Path]
) -> None:
    (tarball,) = tarballs
    paths = {path.rstrip("/") for path, _, _ in ustar_members(tarball)}
    minimum = int(project.answers["python_min"].split(".")[1])
    tags = set()
    for path in (path for path in paths if path.endswith(".pyc")):
        folder, pycache, name = path.rsplit("/", 2)
        stem, tag, _ = name.split(".")
        assert pycache == "__pycache__", path
        assert f"{folder}/{stem}.py" in paths, f"{path} has no source beside it"
        tags.add(tag)
    wanted = {
        f"cpython-3{version.split('.')[1]}"
        for version in interpreters()
        if int(version.split(".")[1]) >= minimum
    }
    assert tags == wanted
    for tag in wanted:
        assert f"lib/{project.plugin_id}/__pycache__/main.{tag}.pyc" in paths, tag


def test_shipped_bytecode_is_what_each_python_loads(
    project: Project, installed: Path, tmp_path: Path
) -> None:
    """No compiling at start, even the first: nothing reaches the user's bytecode cache."""
    minimum = int(project.answers["python_min"].split(".")[1])
    for version, python in interpreters().items():
        if int(version.split(".")[1]) < minimum:
            continue
        cache = tmp_path / version
        env = {
            **os.environ,
            **project.start_env(tmp_path),
            f"{project.env_prefix}_PYTHON": python,
            "XDG_CACHE_HOME": str(cache),
        }
        launcher = [str(installed / "bin" / project.plugin_id)]
        with PluginHost(launcher, project=installed, cwd=tmp_path, env=env) as host:
            host.initialize()
            assert host.request("shutdown")["result"] == {"ok": True}
            assert host.wait() == 0, host.log()
        compiled = [path.name for path in cache.rglob("*.pyc")]
        assert compiled == [], f"Python {version} compiled {compiled} at start"


def test_a_release_pack_refuses_without_every_python_to_compile_with(
    project: Project, tmp_path: Path
) -> None:
    """--bytecode all (the release workflow's) names every missing CPython and the fix."""
    tools = tmp_path / "bin"  # git, and no interpreter but the project's own
    tools.mkdir()
    (tools / "git").symlink_to(shutil.which("git") or "git")
    env = {"PATH": str(tools), "UV_PYTHON_INSTALL_DIR": str(tmp_path / "no-managed-pythons")}
    run = pack(project.path, tmp_path / "dist", "--bytecode", "all", **env)
    assert run.returncode == 1
    own = project.python_version
    minimum = int(project.answers["python_min"].split(".")[1])
    missing = [v for v in SUPPORTED_PYTHONS if int(v.split(".")[1]) >= minimum and v != own]
    assert f"no CPython {', '.join(missing)} here to compile bytecode with" in run.stderr
    assert f"`uv python install {' '.join(missing)}`" in run.stderr
    assert not (tmp_path / "dist").exists()


@pytest.mark.cases("echo")
def test_the_pack_takes_the_commit_and_refuses_what_would_not_ship(
    project: Project, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project.path), str(clone))
    package = clone / "src" / project.plugin_id
    handlers = (package / "handlers.py").read_text()
    (package / "logo.png").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    (package / "Notes.txt").write_text("one")
    (package / "notes.txt").write_text("two")
    (package / "link.py").symlink_to("handlers.py")
    commit_all(clone, "Odd files")
    head = git(clone, "rev-parse", "HEAD").strip()
    git(clone, "update-index", "--add", "--cacheinfo", f"160000,{head},src/{project.plugin_id}/sub")
    git(clone, "commit", "-qm", "A submodule")
    (package / "handlers.py").write_text(handlers + "\n# edited, not committed\n")
    run = pack(clone, tmp_path / "dist", "--bytecode", "none")
    assert run.returncode == 1
    name = f"src/{project.plugin_id}"
    for problem in (
        f"{name}/logo.png is stored with Git LFS",
        f"{name}/Notes.txt and {name}/notes.txt differ only in case",
        f"{name}/link.py is a symlink",
        f"{name}/sub is a git submodule",
        f"uncommitted changes to {name}/handlers.py: the pack takes the commit (HEAD)",
    ):
        assert problem in run.stderr, run.stderr
    assert not (tmp_path / "dist").exists()

    git(clone, "reset", "-q", "--hard", "HEAD~2")
    (package / "handlers.py").write_text(handlers + "\n# edited, not committed\n")
    run = pack(clone, tmp_path / "dist", "--bytecode", "none", "--allow-dirty")
    assert run.returncode == 0, run.stderr
    assert f"left out (not committed): {name}/handlers.py" in run.stderr
    (tarball,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        packed = archive.extractfile(f"lib/{project.plugin_id}/handlers.py")
        assert packed is not None
        assert packed.read().decode() == handlers


def test_verify_release_takes_each_packed_tarball_for_its_tag_only(
    project: Project, tarballs: list[Path]
) -> None:
    verifier = release_verifier(project.path)
    version = project.manifest["plugin"]["version"]
    identity = f"https://github.com/o/r/.github/workflows/release.yml@refs/tags/v{version}"
    for tarball in tarballs:
        said = verifier.check_release(tarball, tarball.read_bytes(), signer_certificate(identity))
        assert said.startswith(f"v{version}: {project.plugin_id} {version} for ")
        later = signer_certificate(identity.replace(version, "9.9.9"))
        with pytest.raises(verifier.Refused, match="is not named"):
            verifier.check_release(tarball, tarball.read_bytes(), later)


def test_the_installed_plugin_knows_its_own_distributions(
    project: Project, installed: Path
) -> None:
    # What passes in the checkout (`importlib.metadata.version(...)`) works installed.
    names = [read_toml(project.path / "pyproject.toml")["project"]["name"], "nexo-plugin-runtime"]
    code = (
        "import sys, importlib.metadata as m; sys.path.insert(0, sys.argv[1]); "
        "print(*(m.version(name) for name in sys.argv[2:]))"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(installed / "lib"), *names],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    runtime_version = read_toml(TEMPLATE_ROOT / "template/runtime/pyproject.toml")["project"]
    assert run.stdout.split() == [project.manifest["plugin"]["version"], runtime_version["version"]]


def test_the_sbom_is_valid_cyclonedx_and_lists_what_is_vendored(
    project: Project, tarballs: list[Path]
) -> None:
    # The plugin and the runtime carry their own metadata, and are not dependencies.
    name = read_toml(project.path / "pyproject.toml")["project"]["name"]
    own = {name.lower().replace("_", "-"), "nexo-plugin-runtime"}
    for tarball in tarballs:
        text = Path(f"{tarball}.cdx.json").read_text()
        errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
        assert errors is None, errors
        document = json.loads(text)
        with tarfile.open(tarball) as archive:
            infos = {
                name.split("/")[-2]
                for name in archive.getnames()
                if name.endswith(".dist-info/METADATA")
            }
        vendored = {
            info.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
            for info in infos
        }
        assert {component["name"] for component in document["components"]} == vendored - own
        for component in document["components"]:
            assert component["purl"] == f"pkg:pypi/{component['name']}@{component['version']}"
            assert all(len(item["content"]) == 64 for item in component["hashes"])
            assert component["hashes"]
