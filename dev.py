#!/usr/bin/env python3
"""Developer entry point of the template repository; needs only python3 (3.10+) and git.

    python3 dev.py demo            render a plugin with default answers, drive its handshake
    python3 dev.py test            run every test of the template, and print the timings
    python3 dev.py test --quick    the quick tier (under a minute): all but the slow tests
    python3 dev.py test ARGS...    pytest with ARGS (`-k questions`, a file, ...)
    python3 dev.py bench           measure a generated plugin against its references
    python3 dev.py hashes          refresh template/runtime/FILES.sha256 after a runtime change
    python3 dev.py contract        does the tree keep the last release's contract (or say
                                   it breaks it)? `--record` at a release

Each first brings .venv/ to exactly what uv.lock pins for the dev dependency group of
pyproject.toml, with uv, which pip installs into .venv on first use. `dev.py test` runs the
runtime's own tests (tests/runtime) under coverage, failing below 90 % of its branches,
beside the template's tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import venv
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
COMMANDS = {
    "demo": [str(BIN / "python"), str(ROOT / "tools" / "demo.py")],
    "bench": [str(BIN / "python"), str(ROOT / "benchmarks" / "bench.py")],
    "hashes": [str(BIN / "python"), str(ROOT / "tools" / "runtime_hashes.py")],
    "contract": [str(BIN / "python"), str(ROOT / "tools" / "release_contract.py")],
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


# The tests start hundreds of Python processes (plugins, their tools, copier) from the
# environments they set up, which compile what they import once and keep it in
# __pycache__: with PYTHONDONTWRITEBYTECODE set (some machines set it for everyone), each
# process compiles it all again (measured on 2 cores: 56 s instead of 31 s for one file of
# set-up plugins). No test depends on it either way; the installed plugin, read-only, has
# its own bytecode tests.
TEST_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run_steps(commands: list[list[str]], output: IO[str] | None = None) -> int:
    """Run `commands` in turn, up to the first that fails; its exit code."""
    for command in commands:
        code = subprocess.run(
            command, cwd=ROOT, stdout=output, stderr=output, env=TEST_ENV
        ).returncode
        if code:
            return code
    return 0


def test(args: list[str]) -> int:
    """The quick tier, or both tiers with their timings; or pytest with the given arguments."""
    quick = "--quick" in args
    args = [arg for arg in args if arg != "--quick"]
    pytest = str(BIN / "pytest")
    if args:
        selection = ["-m", "not slow"] if quick else []
        return subprocess.run([pytest, *selection, *args], cwd=ROOT, env=TEST_ENV).returncode
    begin = time.monotonic()
    if quick:
        code = subprocess.run(
            [pytest, "tests", "-m", "not slow"], cwd=ROOT, env=TEST_ENV
        ).returncode
        quick_tier = ("the quick tier: every test but the slow ones", time.monotonic(), code)
        return report(begin, [quick_tier])
    for stale in ROOT.glob(".coverage*"):
        stale.unlink()
    coverage = str(BIN / "coverage")
    runtime_steps = [
        [coverage, "run", "-m", "pytest", "tests/runtime"],
        [coverage, "combine", "--quiet"],
        [coverage, "report"],
    ]
    # The runtime's tests wait on processes, pipes and sockets more than they compute: they
    # run beside the template's, their output held until both are done.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as held:
        runtime: list[tuple[str, float, int]] = []

        def runtime_tests() -> None:
            code = run_steps(runtime_steps, held)
            label = "beside them, the runtime's tests under coverage (branches at least 90 %)"
            runtime.append((label, time.monotonic(), code))

        beside = threading.Thread(target=runtime_tests)
        beside.start()
        code = run_steps([[pytest, "tests", "--ignore=tests/runtime"]])
        template = ("the template's tests", time.monotonic(), code)
        beside.join()
        held.seek(0)
        print(f"\n{' the runtime tests, under coverage ':=^88}\n{held.read()}")
    return report(begin, [template, *runtime])


def report(begin: float, ends: list[tuple[str, float, int]]) -> int:
    """Print how long each (label, end, exit code) took from `begin`; the first failure's
    exit code, or 0."""
    print("\ndev.py test: timings (wall clock)")
    for label, end, code in ends:
        state = "ok" if code == 0 else f"FAILED ({code})"
        print(f"  {end - begin:7.1f} s  {label}: {state}")
    return next((code for _, _, code in ends if code), 0)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {*COMMANDS, "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    if argv[0] == "test":
        return test(argv[1:])
    return subprocess.run([*COMMANDS[argv[0]], *argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
