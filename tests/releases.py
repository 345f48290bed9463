"""Packing a rendered project, and installing a tarball the way the nexo installer does."""

from __future__ import annotations

import datetime
import importlib.util
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
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


def release_verifier(project: Path) -> ModuleType:
    """The project's scripts/verify_release.py, imported, to test its checks one by one."""
    spec = importlib.util.spec_from_file_location(
        f"verify_release_{project.name}", project / "scripts/verify_release.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signer_certificate(identity: str) -> x509.Certificate:
    """A self-signed certificate naming `identity` as its signer, as Fulcio's would (only
    the bundle's chain to Sigstore's root tells them apart)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "sigstore-intermediate")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True
        )
        .sign(key, hashes.SHA256())
    )
