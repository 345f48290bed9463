"""Measure a generated plugin against the floors, side by side in one run.

    python3 dev.py bench [--pairs N]

Renders a plugin with default answers, packs it, extracts it read-only the way the nexo
installer does, and times it against references. Each figure is taken in turn with its
reference (A, B, A, B, ...); the table shows each side's median and the median of the
per-pair ratios, so machine noise cancels. Both sides use the same real interpreter (never
a version-manager shim). Nothing here asserts: the targets are printed next to the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from render import TEMPLATE_ROOT, copier_cli

PLUGIN_ID = "bench_plugin"
INITIALIZE = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"nexo_version":"0.1.5"}}\n'
EVENTS = 10_000
# The plainest plugin the SDK allows: its adapter and the generated plugin's echo payload,
# published with Event.new (no id, no timestamp, no logging), nothing else.
BARE_PLUGIN = """\
import asyncio
import sys

sys.path.insert(0, sys.argv[1])
from nexo_plugin_sdk import Event, PluginAdapter

MANIFEST = open(sys.argv[2]).read()


async def on_event(topic, event, broker):
    inbound = "plugin.inbound." + topic[len("plugin.outbound."):]
    payload = {"echoed_from": topic, "echoed_payload": event.payload}
    await broker.publish(inbound, Event.new(inbound, "bench_plugin", payload))


asyncio.run(PluginAdapter(manifest_toml=MANIFEST, on_event=on_event).run())
"""


def event_line(index: int) -> bytes:
    topic = f"plugin.outbound.{PLUGIN_ID}"
    event = {
        "id": "6f1c1a52-7f0e-4d59-9d0c-2c5f3bb3b2a1",
        "timestamp": "2026-11-21T10:00:00Z",
        "topic": topic,
        "source": "bench",
        "session_id": None,
        "payload": {"n": index},
    }
    frame = {"jsonrpc": "2.0", "method": "broker.event", "params": {"topic": topic, "event": event}}
    return json.dumps(frame).encode() + b"\n"


def extract(tarball: Path, folder: Path, read_only: bool) -> Path:
    folder.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    if read_only:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & 0o555)
    return folder


def spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )


def finish(process: subprocess.Popen[bytes]) -> None:
    process.stdin.close()
    process.wait(timeout=30)
    process.stdout.close()


def time_exit(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def time_initialize(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = spawn(command, env)
    process.stdin.write(INITIALIZE)
    process.stdin.flush()
    reply = process.stdout.readline()
    elapsed = time.perf_counter() - started
    assert b'"result"' in reply, reply
    finish(process)
    return elapsed


def echo_throughput(command: list[str], env: dict[str, str]) -> float:
    """Events per second: EVENTS notifications written as fast as the pipe takes them."""
    lines = [event_line(index) for index in range(EVENTS)]
    process = spawn(command, env)
    # One echo first, so both sides are fully loaded: the plugin answers initialize
    # before it has imported the SDK.
    process.stdin.write(INITIALIZE + event_line(-1))
    process.stdin.flush()
    process.stdout.readline()
    process.stdout.readline()

    def write_all() -> None:
        for line in lines:
            process.stdin.write(line)
        process.stdin.flush()

    started = time.perf_counter()
    writer = threading.Thread(target=write_all)
    writer.start()
    # Read in bulk: the harness should cost as little as possible on both sides.
    received, publishes = b"", 0
    while received.count(b"\n") < EVENTS:
        chunk = os.read(process.stdout.fileno(), 1 << 20)
        assert chunk, "the plugin closed stdout"
        received += chunk
    elapsed = time.perf_counter() - started
    publishes = received.count(b'"method": "broker.publish"')
    assert publishes == EVENTS, publishes
    writer.join()
    finish(process)
    return EVENTS / elapsed


def resident_kib(command: list[str], env: dict[str, str]) -> float:
    """Resident memory after initialize and one echo, when the plugin is fully loaded."""
    process = spawn(command, env)
    process.stdin.write(INITIALIZE + event_line(0))
    process.stdin.flush()
    process.stdout.readline()
    process.stdout.readline()
    rss = subprocess.run(
        ["ps", "-o", "rss=", "-p", str(process.pid)], capture_output=True, text=True
    )
    finish(process)
    return float(rss.stdout.strip())


def paired(
    measure_a: Callable[[], float], measure_b: Callable[[], float], pairs: int
) -> tuple[float, float, float]:
    """(median A, median B, median of A/B) over alternating runs, after one warm-up each."""
    measure_a(), measure_b()
    a_values, b_values = [], []
    for _ in range(pairs):
        a_values.append(measure_a())
        b_values.append(measure_b())
    ratios = [a / b for a, b in zip(a_values, b_values, strict=True)]
    return statistics.median(a_values), statistics.median(b_values), statistics.median(ratios)


def timed(action: Callable[[], object], runs: int = 3) -> float:
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        values.append(time.perf_counter() - started)
    return statistics.median(values)


def render(work: Path, name: str) -> Path:
    destination = work / name
    data = f"plugin_id={PLUGIN_ID}"
    run = copier_cli(
        "copy",
        "--defaults",
        "--vcs-ref",
        "HEAD",
        "--data",
        data,
        str(TEMPLATE_ROOT),
        str(destination),
    )
    assert run.returncode == 0, run.stderr
    return destination


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="pairs per start-up figure")
    args = parser.parse_args(argv)
    # The real interpreter behind this venv, for both sides (never a version-manager shim).
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    work = Path(tempfile.mkdtemp(prefix="nexo-bench-"))
    renders = iter(range(1000))
    copy_time = timed(lambda: render(work, f"render{next(renders)}"))
    project, dist = work / "render0", work / "dist"
    pack = [sys.executable, "scripts/pack_tarball.py", "--out", str(dist)]
    pack_time = timed(lambda: subprocess.run(pack, cwd=project, check=True, capture_output=True))
    (tarball,) = dist.glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        entries = len(archive.getmembers())

    installed = extract(tarball, work / "installed" / PLUGIN_ID, read_only=True)
    manifest = str(installed / "nexo-plugin.toml")
    bare_lib = str(extract(tarball, work / "bare-copy", read_only=False) / "lib")
    (work / "bare_plugin.py").write_text(BARE_PLUGIN)
    bare = [python, "-I", str(work / "bare_plugin.py"), bare_lib, manifest]
    launcher = [str(installed / "bin" / PLUGIN_ID)]
    env = {**os.environ, f"{PLUGIN_ID.upper()}_PYTHON": python}
    fresh = iter(range(10_000))

    def cold_initialize() -> float:
        # A new read-only extraction: nothing compiled or cached for it.
        folder = extract(tarball, work / "cold" / str(next(fresh)) / PLUGIN_ID, read_only=True)
        return time_initialize([str(folder / "bin" / PLUGIN_ID)], env)

    def probe() -> float:
        return time_exit([*launcher, "--print-manifest"], env)

    def floor() -> float:
        return time_exit([python, "-I", "-S", "-c", "pass"], env)

    rows = [
        (
            "--print-manifest vs python3 -I -S -c pass",
            "<= 1.20",
            paired(probe, floor, args.pairs),
            "ms",
        ),
        (
            "spawn to initialize reply, warm, vs bare SDK",
            "<= 1.00",
            paired(
                partial(time_initialize, launcher, env),
                partial(time_initialize, bare, env),
                args.pairs,
            ),
            "ms",
        ),
        (
            "spawn to initialize reply, cold read-only vs warm",
            "<= 1.20",
            paired(cold_initialize, partial(time_initialize, launcher, env), args.pairs),
            "ms",
        ),
        (
            f"echo throughput, {EVENTS} events, vs bare Event.new",
            ">= 0.85",
            paired(partial(echo_throughput, launcher, env), partial(echo_throughput, bare, env), 7),
            "ev/s",
        ),
        (
            "resident memory after initialize + 1 echo, vs bare",
            "<= 1.05",
            paired(partial(resident_kib, launcher, env), partial(resident_kib, bare, env), 7),
            "KiB",
        ),
    ]

    implementation = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, {implementation} ({python})")
    print(f"{'measure':<52} {'plugin':>11} {'reference':>11} {'ratio':>7} {'target':>8}")
    for label, target, (a, b, ratio), unit in rows:
        scale = 1000 if unit == "ms" else 1
        plugin, reference = f"{a * scale:.1f} {unit}", f"{b * scale:.1f} {unit}"
        print(f"{label:<52} {plugin:>11} {reference:>11} {ratio:>7.2f} {target:>8}")
    print(f"\ntarball: {tarball.name}, {tarball.stat().st_size / 1024:.1f} KiB, {entries} entries")
    print(f"copier copy: {copy_time * 1000:.0f} ms   pack: {pack_time * 1000:.0f} ms (median of 3)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
