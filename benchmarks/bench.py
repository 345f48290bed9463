"""Measure generated plugins against their floors, side by side in one run.

    python3 dev.py bench [--pairs N] [--only WORD]

Renders an echo plugin and an outbound adapter (whose handlers import httpx before it
answers, as an author's own code may), packs them, installs them read-only the way the nexo
installer does, and times them against references: the bare SDK plugin, the physical
reference (a plain synchronous loop doing the same work with nothing but the standard
library), the interpreter's own start, the same code installed with pip in a venv. Each
figure is taken in turn with its reference (A, B, A, B, ...): the table shows each side's
median and the median of the per-pair ratios, so machine noise cancels. Both sides use the
same real interpreter. Then it times a freshly generated plugin's first `uv run pytest`
for three combinations of capabilities. Nothing here asserts: the targets are printed next
to the figures, and every event a plugin publishes is checked to be strict JSON the daemon
accepts.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from environments import first_steps, uv
from releases import install, pack
from rendering import render

INITIALIZE = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"nexo_version":"0.1.5"}}\n'
EVENTS = 10_000
ALL_CAPABILITIES = ("webhook", "poller", "outbound", "tools")
DAEMON_QUEUE = 64  # frames the daemon queues for a plugin before it drops events
# The plainest plugin the SDK allows: its adapter and the generated plugin's echo payload,
# published with Event.new (no id or timestamp: the daemon would drop it), nothing else.
BARE_PLUGIN = """\
import asyncio
import sys

sys.path.insert(0, sys.argv[1])
from nexo_plugin_sdk import Event, PluginAdapter

MANIFEST = open(sys.argv[2]).read()


async def on_event(topic, event, broker):
    inbound = "plugin.inbound." + topic[len("plugin.outbound."):]
    payload = {"echoed_from": topic, "echoed_payload": event.payload}
    await broker.publish(inbound, Event.new(inbound, "bench_echo", payload))


asyncio.run(PluginAdapter(manifest_toml=MANIFEST, on_event=on_event).run())
"""


# The physical reference: what echoing costs at the least in Python. Reads stdin in large
# chunks, decodes each frame, stamps and encodes each event as the runtime does (a UUID4 from
# os.urandom, the time's date part formatted once a second, strict JSON), writes once per
# chunk. No asyncio, no handler, no checks but the decoding.
PHYSICAL_REFERENCE = """\
import json, os, time

encode = json.JSONEncoder(allow_nan=False).encode
decode = json.JSONDecoder().decode
second, second_text = -1, ""


def stamp():
    global second, second_text
    now = time.time()
    whole = int(now)
    if whole != second:
        second, second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{second_text}.{int((now - whole) * 1_000_000):06d}+00:00"


def new_id():
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


pending = b""
while chunk := os.read(0, 1 << 20):
    *lines, pending = (pending + chunk).split(b"\\n")
    out = []
    for line in lines:
        frame = decode(line.decode())
        if frame.get("method") == "initialize":
            out.append(encode({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
        elif frame.get("method") == "broker.event":
            topic = frame["params"]["topic"]
            event = frame["params"]["event"]
            inbound = "plugin.inbound." + topic[len("plugin.outbound."):]
            payload = {"echoed_from": topic, "echoed_payload": event["payload"]}
            published = {"id": new_id(), "timestamp": stamp(), "topic": inbound,
                         "source": "bench_echo", "session_id": event.get("session_id"),
                         "payload": payload}
            params = {"topic": inbound, "event": published}
            out.append(encode({"jsonrpc": "2.0", "method": "broker.publish", "params": params}))
    if out:
        os.write(1, ("\\n".join(out) + "\\n").encode())
"""


def event_line(index: int, kind: str = "bench_echo") -> bytes:
    topic = f"plugin.outbound.{kind}"
    event = {
        "id": str(uuid.UUID(int=index + 1)),
        "timestamp": "2026-11-21T10:00:00Z",
        "topic": topic,
        "source": "bench",
        "session_id": None,
        "payload": {"n": index},
    }
    frame = {"jsonrpc": "2.0", "method": "broker.event", "params": {"topic": topic, "event": event}}
    return json.dumps(frame).encode() + b"\n"


def spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )


def finish(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    process.wait(timeout=30)
    process.stdout.close()


def started(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process that has answered initialize and echoed one event: fully loaded."""
    process = spawn(command, env)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(INITIALIZE + event_line(-1))
    process.stdin.flush()
    process.stdout.readline()
    process.stdout.readline()
    return process


def time_exit(command: list[str], env: dict[str, str]) -> float:
    begin = time.perf_counter()
    subprocess.run(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - begin


def time_initialize(command: list[str], env: dict[str, str]) -> float:
    begin = time.perf_counter()
    process = spawn(command, env)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(INITIALIZE)
    process.stdin.flush()
    reply = process.stdout.readline()
    elapsed = time.perf_counter() - begin
    assert b'"result"' in reply, reply
    finish(process)
    return elapsed


def daemon_accepts(line: bytes) -> bool:
    """What the daemon checks of a publish: strict JSON, a UUID id, an RFC 3339 UTC time."""

    def reject(token: str) -> float:
        raise ValueError(token)

    frame = json.loads(line, parse_constant=reject)
    event = frame["params"]["event"]
    uuid.UUID(event["id"])
    return datetime.fromisoformat(event["timestamp"]).utcoffset() is not None


def throughput(command: list[str], env: dict[str, str], check: bool) -> float:
    """Events per second: EVENTS notifications written as fast as the pipe takes them."""
    lines = b"".join(event_line(index) for index in range(EVENTS))
    process = started(command, env)
    stdin = process.stdin
    assert stdin is not None
    assert process.stdout is not None
    writer = threading.Thread(target=lambda: (stdin.write(lines), stdin.flush()))
    begin = time.perf_counter()
    writer.start()
    received = bytearray()
    while received.count(b"\n") < EVENTS:
        chunk = os.read(process.stdout.fileno(), 1 << 20)
        assert chunk, "the plugin closed stdout"
        received += chunk
    elapsed = time.perf_counter() - begin
    writer.join()
    finish(process)
    published = bytes(received).splitlines()
    assert len(published) == EVENTS
    if check:
        assert all(daemon_accepts(line) for line in published)
    return EVENTS / elapsed


def round_trips(command: list[str], env: dict[str, str], count: int = 300) -> list[float]:
    """Event in, publish out, one at a time at a low rate: each latency in seconds."""
    process = started(command, env)
    assert process.stdin is not None
    assert process.stdout is not None
    latencies = []
    for index in range(count):
        begin = time.perf_counter()
        process.stdin.write(event_line(index))
        process.stdin.flush()
        process.stdout.readline()
        latencies.append(time.perf_counter() - begin)
        time.sleep(0.002)
    finish(process)
    return latencies


def dropped_at(command: list[str], env: dict[str, str], rate: int, seconds: float = 1.0) -> int:
    """Events a daemon feeding `rate` events per second would drop. Like the daemon, it
    queues at most DAEMON_QUEUE frames for the plugin (plus the one being written) and drops
    what comes beyond. One thread, non-blocking pipes, so that the host is never the limit."""
    process = started(command, env)
    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin.fileno(), process.stdout.fileno()
    os.set_blocking(stdin, False)
    os.set_blocking(stdout, False)
    lines = [event_line(index) for index in range(int(rate * seconds))]
    waiting: collections.deque[bytes] = collections.deque()  # the daemon's queue
    writing = b""  # the rest of the frame the daemon's writer holds
    dropped = offered = 0
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        begin = time.perf_counter()
        while offered < len(lines) or waiting or writing:
            due = min(len(lines), int((time.perf_counter() - begin) * rate) + 1)
            for line in lines[offered:due]:
                if len(waiting) < DAEMON_QUEUE:
                    waiting.append(line)
                else:
                    dropped += 1
            offered = max(offered, due)
            if writing or waiting:
                try:
                    written = os.write(stdin, writing + b"".join(waiting))
                except BlockingIOError:
                    written = 0
                written -= len(writing)
                writing = writing[len(writing) + written :] if written < 0 else b""
                while written > 0:
                    frame = waiting.popleft()
                    writing, written = frame[written:], written - len(frame)
            if selector.select(timeout=min(1 / rate, 0.001)):
                os.read(stdout, 1 << 20)
    process.stdin.close()
    os.set_blocking(stdout, True)
    while os.read(stdout, 1 << 20):
        pass
    process.wait(timeout=30)
    process.stdout.close()
    return dropped


def sustained_rate(command: list[str], env: dict[str, str]) -> float:
    """The highest rate (a power-of-two step search, then halving) with nothing dropped."""
    low, high = 0, 1000
    while dropped_at(command, env, high) == 0 and high < 512_000:
        low, high = high, high * 2
    for _ in range(5):
        middle = (low + high) // 2
        low, high = (middle, high) if dropped_at(command, env, middle) == 0 else (low, middle)
    return float(low)


def resident_kib(command: list[str], env: dict[str, str]) -> float:
    process = started(command, env)
    rss = subprocess.run(
        ["ps", "-o", "rss=", "-p", str(process.pid)], capture_output=True, text=True
    )
    finish(process)
    return float(rss.stdout.strip())


@dataclass
class Row:
    label: str
    target: str
    plugin: float
    reference: float
    ratio: float
    unit: str


def paired(
    label: str, target: str, unit: str, a: Callable[[], float], b: Callable[[], float], pairs: int
) -> Row:
    """Median A, median B and the median of A/B over alternating runs, after a warm-up each."""
    a(), b()
    a_values, b_values = [], []
    for _ in range(pairs):
        a_values.append(a())
        b_values.append(b())
    ratios = [x / y for x, y in zip(a_values, b_values, strict=True)]
    return Row(
        label,
        target,
        statistics.median(a_values),
        statistics.median(b_values),
        statistics.median(ratios),
        unit,
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


# The adapter's handlers: outbound delivery, with httpx imported before the plugin answers.
ADAPTER_HANDLERS = """\
from __future__ import annotations

import httpx  # an author's own use of it, at import
from nexo_plugin_runtime import InboundEvent, PluginContext, deliver

TIMEOUT = httpx.Timeout(5.0)


async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    result = await deliver(plugin, "http://127.0.0.1:9/", event.payload, idempotency_key=event.id)
    await plugin.publish(plugin.inbound_topic(topic) + ".delivery", result.to_json())
"""


def prepared(
    work: Path, name: str, capabilities: list[str], python: str, handlers: str | None = None
) -> tuple[Path, Path]:
    """A rendered, set-up and packed plugin, and its tarball installed read-only."""
    project = render(work / name, plugin_id=name, capabilities=capabilities)
    if handlers is not None:
        (project / "src" / name / "handlers.py").write_text(handlers)
        (project / "nexo-plugin.toml").write_text(
            re.sub(r"(?m)^env = .*\n", "", (project / "nexo-plugin.toml").read_text())
        )
    first_steps(project, python)
    run = pack(project, work / f"dist-{name}")
    assert run.returncode == 0, run.stderr
    (tarball,) = (work / f"dist-{name}").glob("*.tar.gz")
    return project, install(tarball, work / "installed" / name)


def fresh_plugin_tests(work: Path, name: str, capabilities: list[str], python: str) -> float:
    """Seconds of a plugin's first `uv run pytest`, right after the README's first steps
    (`git init`, `uv sync`, which compiles bytecode, a commit)."""
    project = render(work / name, plugin_id=name, capabilities=capabilities)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    synced = uv("sync", "--quiet", "--python", python, cwd=project)
    assert synced.returncode == 0, synced.stderr
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "Start"], cwd=project, check=True)
    begin = time.monotonic()
    tests = uv("run", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    seconds = time.monotonic() - begin
    assert tests.returncode == 0, tests.stdout + tests.stderr
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="pairs per start-up figure")
    parser.add_argument("--only", default="", help="only the measures whose label has WORD")
    parser.add_argument("--python", help="the interpreter of both sides (default: this one's)")
    args = parser.parse_args(argv)
    python = args.python or os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    work = Path(tempfile.mkdtemp(prefix="nexo-bench-"))
    _, echo = prepared(work, "bench_echo", [], python)
    adapter_project, adapter = prepared(work, "bench_out", ["outbound"], python, ADAPTER_HANDLERS)

    env = {
        **os.environ,
        "BENCH_ECHO_PYTHON": python,
        "BENCH_OUT_PYTHON": python,
        "BENCH_OUT_DELIVERY_URL": "http://127.0.0.1:9/",
        "BENCH_OUT_STATE_DIR": str(work / "state"),
        "XDG_CACHE_HOME": str(work / "cache"),
    }
    launcher = [str(echo / "bin" / "bench_echo")]
    bare_lib = shutil.copytree(echo / "lib", work / "bare-lib")
    (work / "bare_plugin.py").write_text(BARE_PLUGIN)
    (work / "physical.py").write_text(PHYSICAL_REFERENCE)
    physical = [python, "-I", "-S", str(work / "physical.py")]
    bare = [
        python,
        "-I",
        str(work / "bare_plugin.py"),
        str(bare_lib),
        str(echo / "nexo-plugin.toml"),
    ]
    # The adapter's code installed with pip in a venv: the runtime packages uv.lock pins, and
    # its source with bytecode written on first import.
    venv = work / "pip-venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    exported = uv(
        "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes", cwd=adapter_project
    )
    (work / "adapter-requirements.txt").write_text(
        exported.stdout + f"{adapter_project / 'runtime'}\n"
    )
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "-r", str(work / "adapter-requirements.txt")],
        check=True,
    )
    checkout = shutil.copytree(
        adapter_project, work / "adapter-checkout", ignore=shutil.ignore_patterns(".venv", ".git")
    )
    pip_adapter = [str(checkout / "bin" / "bench_out")]
    pip_env = {**env, "BENCH_OUT_PYTHON": str(venv / "bin/python")}
    installed_adapter = [str(adapter / "bin" / "bench_out")]
    caches = iter(range(1000))

    def first_start() -> float:  # an empty bytecode cache, as right after installing
        return time_initialize(
            installed_adapter, {**env, "XDG_CACHE_HOME": str(work / f"cold-{next(caches)}")}
        )

    latencies: dict[str, list[float]] = {"plugin": [], "bare": []}

    def latency(side: str, command: list[str]) -> Callable[[], float]:
        def measure() -> float:
            values = round_trips(command, env)
            latencies[side] += values
            return statistics.median(values)

        return measure

    measures = [
        (
            "--print-manifest vs python3 -I -S -c pass",
            "<= 0.30",
            "ms",
            lambda: time_exit([*launcher, "--print-manifest"], env),
            lambda: time_exit([python, "-I", "-S", "-c", "pass"], env),
            args.pairs,
        ),
        (
            "spawn to initialize, echo (start checks run) vs bare SDK",
            "<= 0.80",
            "ms",
            lambda: time_initialize(launcher, env),
            lambda: time_initialize(bare, env),
            args.pairs,
        ),
        (
            "spawn to initialize, httpx adapter installed: 2nd+ start vs pip venv",
            "<= 1.00",
            "ms",
            lambda: time_initialize(installed_adapter, env),
            lambda: time_initialize(pip_adapter, pip_env),
            args.pairs,
        ),
        (
            "spawn to initialize, httpx adapter installed: 1st start vs pip venv",
            "<= 1.30",
            "ms",
            first_start,
            lambda: time_initialize(pip_adapter, pip_env),
            args.pairs,
        ),
        (
            f"echo throughput, {EVENTS} events, vs the physical reference",
            ">= 0.75",
            "ev/s",
            lambda: throughput(launcher, env, check=True),
            lambda: throughput(physical, env, check=True),
            7,
        ),
        (
            f"echo throughput, {EVENTS} events, vs bare SDK",
            ">= 1.50",
            "ev/s",
            lambda: throughput(launcher, env, check=True),
            lambda: throughput(bare, env, check=False),
            7,
        ),
        (
            "round trip at a low rate, median, vs bare SDK",
            "<= 1.00",
            "ms",
            latency("plugin", launcher),
            latency("bare", bare),
            5,
        ),
        (
            f"highest rate with nothing dropped ({DAEMON_QUEUE}-frame queue)",
            ">= 1.00",
            "ev/s",
            lambda: sustained_rate(launcher, env),
            lambda: sustained_rate(bare, env),
            3,
        ),
        (
            "resident memory after start + 1 event, vs bare SDK",
            "<= 1.00",
            "KiB",
            lambda: resident_kib(launcher, env),
            lambda: resident_kib(bare, env),
            7,
        ),
    ]
    rows = [paired(*measure) for measure in measures if args.only in measure[0]]

    implementation = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, {implementation} ({python})")
    print(f"{'measure':<66} {'plugin':>13} {'reference':>13} {'ratio':>6} {'target':>8}")
    for row in rows:
        scale = 1000 if row.unit == "ms" else 1
        plugin, reference = (
            f"{row.plugin * scale:.1f} {row.unit}",
            f"{row.reference * scale:.1f} {row.unit}",
        )
        print(f"{row.label:<66} {plugin:>13} {reference:>13} {row.ratio:>6.2f} {row.target:>8}")
    if all(latencies.values()):
        p99 = {side: percentile(values, 0.99) * 1000 for side, values in latencies.items()}
        print(f"\nround trip p99: plugin {p99['plugin']:.2f} ms, bare SDK {p99['bare']:.2f} ms")
    size = sum(path.stat().st_size for path in (work / "dist-bench_echo").glob("*.tar.gz")) / 1024
    print(f"echo tarball {size:.1f} KiB; each published event checked: strict JSON, UUID id, UTC")
    if args.only in "fresh plugin uv run pytest":
        print("\na fresh plugin's first `uv run pytest` (target <= 15 s):")
        combinations: list[list[str]] = [
            [],
            ["webhook", "outbound", "tools"],
            list(ALL_CAPABILITIES),
        ]
        for index, capabilities in enumerate(combinations):
            seconds = fresh_plugin_tests(work, f"fresh_{index}", capabilities, python)
            print(f"  {'+'.join(capabilities) or 'echo':<34} {seconds:6.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
