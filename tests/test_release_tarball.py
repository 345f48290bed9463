"""Each rendered project's release tarball, read back at the byte level: what the generated
project's own tests/test_pack.py checks through tarfile, checked here without it."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import Project

BLOCK = 512


@pytest.fixture(scope="module")
def tarball(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"dist-{project.case}")
    run = subprocess.run(
        [str(project.path / ".venv/bin/python"), "scripts/pack_tarball.py", "--out", str(out)],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return out / f"{project.plugin_id}-0.1.0-noarch.tar.gz"


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


def test_gzip_header_carries_no_name_and_no_time(tarball: Path) -> None:
    header = tarball.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0, "FNAME set: the file name would leak into the bytes"
    assert header[4:8] == b"\0\0\0\0", "gzip MTIME is not 0"


def test_sidecar_is_bare_lowercase_hex(tarball: Path) -> None:
    sidecar = Path(f"{tarball}.sha256").read_bytes()
    assert sidecar == hashlib.sha256(tarball.read_bytes()).hexdigest().encode() + b"\n"


def test_archive_layout(tarball: Path, project: Project) -> None:
    members = ustar_members(tarball)
    paths = [path.rstrip("/") for path, _, _ in members]
    assert paths == sorted(paths)
    assert {kind for _, kind, _ in members} <= {b"0", b"5"}, "only files and directories"
    roots = {path.split("/")[0] for path in paths}
    assert roots == {"nexo-plugin.toml", "bin", "lib", "LICENSE"}
    modes = {path.rstrip("/"): mode for path, _, mode in members}
    assert modes[f"bin/{project.plugin_id}"] == 0o755
    assert modes["lib"] == 0o755
    vendored = {path.split("/")[1] for path in paths if path.startswith("lib/")}
    expected = {project.plugin_id, "nexo_plugin_sdk", "nexoai-0.4.0.dist-info"}
    if project.answers["python_min"] == "3.10":
        expected |= {"tomli", "tomli-2.5.0.dist-info"}
    assert vendored == expected
    assert not [path for path in paths if "__pycache__" in path or path.endswith(".pyc")]
