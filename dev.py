#!/usr/bin/env python3
"""Developer entry point of the template repository; needs only python3 (3.10+) and git.

    python3 dev.py demo   render a plugin with default answers and drive its handshake
    python3 dev.py test   run the template's whole test suite (extra arguments go to pytest)
    python3 dev.py bench  measure a generated plugin against the floors (benchmarks/)

Both create .venv/ with requirements-dev.txt on first use.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
REQUIREMENTS = ROOT / "requirements-dev.txt"
STAMP = VENV / ".requirements.sha256"


def ensure_venv() -> None:
    """Create or refresh .venv when requirements-dev.txt changed."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    if argv[0] == "test":
        command = [str(BIN / "pytest"), *argv[1:]]
    else:
        script = {"demo": ROOT / "tests" / "demo.py", "bench": ROOT / "benchmarks" / "bench.py"}
        command = [str(BIN / "python"), str(script[argv[0]]), *argv[1:]]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
