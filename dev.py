#!/usr/bin/env python3
"""Developer entry point of the template repository; needs only python3 (3.10+) and git.

    python3 dev.py demo   render a plugin with default answers and drive its handshake
    python3 dev.py test   run the template's whole test suite (extra arguments go to pytest)
    python3 dev.py bench  measure a generated plugin against the floors (benchmarks/)
    python3 dev.py hashes refresh template/runtime/FILES.sha256 after changing the runtime

Each first brings .venv/ to exactly what uv.lock pins for the dev dependency group of
pyproject.toml, with uv, which pip installs into .venv on first use.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
COMMANDS = {
    "demo": [str(BIN / "python"), str(ROOT / "tools" / "demo.py")],
    "test": [str(BIN / "pytest")],
    "bench": [str(BIN / "python"), str(ROOT / "benchmarks" / "bench.py")],
    "hashes": [str(BIN / "python"), str(ROOT / "tools" / "runtime_hashes.py")],
}


def ensure_venv() -> None:
    """.venv with uv in it, then synced to uv.lock (quick when nothing changed)."""
    if not (BIN / "uv").exists():
        print("dev.py: creating .venv", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        pip = [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        subprocess.run([*pip, "uv"], check=True)
    sync = [str(BIN / "uv"), "sync", "--locked", "--no-install-project", "--quiet"]
    subprocess.run([*sync, "--python", str(BIN / "python")], check=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    return subprocess.run([*COMMANDS[argv[0]], *argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
