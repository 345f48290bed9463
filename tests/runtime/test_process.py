"""The plugin process as the daemon runs it (process.py and the template's main.py), in real
subprocesses: the probe, the stdout fence, stdin that is not a daemon's, signals, secrets
on stderr, --check, and a closed stdout."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
from checkouts import INITIALIZE, TEMPLATE, command, environment, plugin_tree
from harness import STOPS_PROMPTLY
from nexo_plugin_runtime.testing import PluginHost, strict_json


def run(
    folder: Path,
    *args: str,
    stdin: IO[bytes] | None = None,
    input: bytes | None = INITIALIZE,
    **extra: str,
) -> subprocess.CompletedProcess[bytes]:
    """The plugin run to its end with `input` on a pipe, or `stdin` (a file) instead."""
    return subprocess.run(
        command(folder, *args),
        input=input if stdin is None else None,
        stdin=stdin,
        capture_output=True,
        cwd=folder.parent,
        env=environment(folder, **extra),
        timeout=20,
    )


ECHO = """
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    await plugin.publish(plugin.inbound_topic(topic), event.payload)
"""


def test_the_probe_answers_with_the_manifest_and_loads_nothing_else(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO)
    probe = run(folder, "--print-manifest", input=None)
    assert (probe.returncode, probe.stdout) == (0, (folder / "nexo-plugin.toml").read_bytes())
    unmeasured = {key: value for key, value in environment(folder).items() if "COVERAGE" not in key}
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "proc.main", "--print-manifest"],
        capture_output=True,
        env=unmeasured,  # not under coverage, which imports modules of its own
        timeout=20,
    )
    imported = {line.split("|")[-1].strip() for line in timed.stderr.decode().splitlines()}
    assert {"asyncio", "nexo_plugin_sdk", "proc.handlers", "tomllib", "tomli"}.isdisjoint(imported)


NOISY = """
import logging, os, subprocess, sys
print("print at import")
os.write(1, b"os.write(1) at import\\n")
subprocess.run(["echo", "a child process"])
logging.getLogger("noisy").addHandler(logging.StreamHandler(sys.stdout))

def on_start(plugin):
    print("print in on_start")
    logging.getLogger("noisy").warning("a log record")
"""


def test_nothing_but_frames_reaches_stdout(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", NOISY)
    done = run(folder)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert strict_json(line)["id"] == 1
    for text in (
        "print at import",
        "os.write(1) at import",
        "a child process",
        "print in on_start",
        "a log record",
    ):
        assert text.encode() in done.stderr


@pytest.mark.parametrize("stdin", ["devnull", "file"])
def test_stdin_that_no_daemon_could_be_behind_exits_2_with_a_hint(
    tmp_path: Path, stdin: str
) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO)
    (tmp_path / "frames").write_bytes(INITIALIZE)
    with open(os.devnull if stdin == "devnull" else tmp_path / "frames", "rb") as source:
        done = run(folder, stdin=source)
    assert (done.returncode, done.stdout) == (2, b"")
    assert b"stdin is not a pipe or socket" in done.stderr


def test_a_non_blocking_socket_as_stdin_is_served(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO)
    ours, theirs = socket.socketpair()
    flags = fcntl.fcntl(theirs, fcntl.F_GETFL)
    fcntl.fcntl(theirs, fcntl.F_SETFL, flags | os.O_NONBLOCK)  # as a tokio UnixStream hands it
    plugin = subprocess.Popen(
        command(folder), stdin=theirs.fileno(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=environment(folder),
    )  # fmt: skip
    theirs.close()
    try:
        time.sleep(0.3)  # the plugin reaches its first read before anything is there
        ours.sendall(INITIALIZE)
        assert plugin.stdout is not None
        assert strict_json(plugin.stdout.readline())["id"] == 1
        ours.shutdown(socket.SHUT_WR)
        assert plugin.wait(timeout=10) == 0
    finally:
        plugin.kill()
        ours.close()
        plugin.communicate()


SLOW_STOP = """
import asyncio
from nexo_plugin_runtime import PluginContext

def on_start(plugin: PluginContext[None]) -> None:
    plugin.log.warning("started")

async def on_shutdown(plugin: PluginContext[None]) -> None:
    plugin.log.warning("on_shutdown runs")
    await asyncio.sleep(30)
"""


def start_process(folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command(folder), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=environment(folder),
    )  # fmt: skip


@pytest.mark.parametrize("when", ["before-initialize", "after-initialize"])
def test_sigterm_stops_the_plugin_within_the_daemon_s_grace(tmp_path: Path, when: str) -> None:
    folder = plugin_tree(tmp_path / "p", SLOW_STOP)
    plugin = start_process(folder)
    assert plugin.stdin is not None
    assert plugin.stdout is not None
    assert plugin.stderr is not None
    assert b"started" in plugin.stderr.readline()  # its signal handlers are in place
    if when == "after-initialize":
        plugin.stdin.write(INITIALIZE)
        plugin.stdin.flush()
        plugin.stdout.readline()
    asked = time.monotonic()
    plugin.send_signal(signal.SIGTERM)
    _, stderr = plugin.communicate(timeout=10)
    assert plugin.returncode == 0
    assert time.monotonic() - asked < STOPS_PROMPTLY
    # on_shutdown runs (and is cut short) exactly when the plugin had answered initialize.
    assert (b"on_shutdown runs" in stderr) == (when == "after-initialize")


def test_a_second_signal_ends_the_process_at_once(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", SLOW_STOP.replace("sleep(30)", "sleep(30)  # stuck"))
    plugin = start_process(folder)
    assert plugin.stdin is not None
    assert plugin.stdout is not None
    plugin.stdin.write(INITIALIZE)
    plugin.stdin.flush()
    plugin.stdout.readline()
    plugin.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    plugin.send_signal(signal.SIGTERM)
    _, stderr = plugin.communicate(timeout=5)
    assert plugin.returncode != 0
    assert b"SIGTERM while stopping: exiting now" in stderr


LEAKY = """
import logging
from nexo_plugin_runtime import InboundEvent, PluginContext, Secret
from dataclasses import dataclass

@dataclass(frozen=True)
class Config:
    token: Secret
    feed_url: str

async def on_event(plugin: PluginContext[Config], topic: str, event: InboundEvent) -> None:
    token = plugin.config.token.reveal()
    plugin.log.warning("sending with %s to %s", token, plugin.config.feed_url)
    print(f"print: {token}")
    raise RuntimeError(f"failed with Authorization: Bearer {token}")
"""


def test_no_secret_reaches_stderr_however_it_is_written(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", LEAKY, requires=("PROC_TOKEN", "PROC_FEED_URL"))
    frames = (
        INITIALIZE
        + json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "broker.event",
                "params": {"topic": "plugin.outbound.proc", "event": {"payload": 1}},
            }
        ).encode()
        + b"\n"
    )
    done = run(
        folder,
        input=frames,
        PROC_TOKEN="tok-very-secret",
        PROC_FEED_URL="https://me:url-pw-77@feed/x",
    )
    assert done.returncode == 0, done.stderr
    stderr = done.stderr.decode()
    assert "tok-very-secret" not in stderr
    assert "url-pw-77" not in stderr
    assert "sending with ******** to https://me:********@feed/x" in stderr
    assert "print: ********" in stderr
    assert "Bearer ********" in stderr
    assert all(line.startswith(("WARNING", "ERROR", "print")) for line in stderr.splitlines())


def test_a_trailing_newline_in_a_secret_refuses_the_start_on_one_line(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", LEAKY, requires=("PROC_TOKEN", "PROC_FEED_URL"))
    done = run(folder, PROC_TOKEN="tok-very-secret\n", PROC_FEED_URL="https://feed/x")
    assert (done.returncode, done.stdout) == (1, b"")
    (line,) = done.stderr.decode().splitlines()
    assert "PROC_TOKEN (a secret, not shown) has whitespace around it" in line
    assert "tok-very-secret" not in line


def test_check_help_and_unknown_arguments(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO, runtime=True)
    checked = run(folder, "--check", input=b"")
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == b"proc: handlers.py and nexo-plugin.toml agree (tools: none)\n"
    helped = run(folder, "--help", input=b"")
    assert helped.returncode == 0
    assert b"usage: bin/proc" in helped.stderr
    unknown = run(folder, "--nope", input=b"")
    assert unknown.returncode == 2
    assert b"unknown arguments ['--nope']" in unknown.stderr


def test_check_refuses_a_modified_runtime_naming_the_file_and_the_way_out(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO, runtime=True)
    session = folder / "runtime" / "src" / "nexo_plugin_runtime" / "session.py"
    session.write_text(
        session.read_text().replace("STOP_GRACE_SECONDS = 0.8", "STOP_GRACE_SECONDS = 9")
    )
    checked = run(folder, "--check", input=b"")
    assert checked.returncode == 1
    assert checked.stderr.decode().splitlines() == [
        "proc: runtime/src/nexo_plugin_runtime/session.py differs from the runtime of the "
        "template version this plugin follows",
        "proc: runtime/ follows the template, and `copier update` replaces it: move the change "
        "into your own code under src/, or take the template's runtime back with `copier "
        "update` (or `git checkout -- runtime/`)",
    ]


def test_a_closed_stdout_stops_the_plugin_without_a_traceback(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO)
    plugin = start_process(folder)
    assert plugin.stdin is not None
    assert plugin.stdout is not None
    plugin.stdin.write(INITIALIZE)
    plugin.stdin.flush()
    assert b'"result"' in plugin.stdout.readline()
    plugin.stdout.close()  # stdin stays open: only the closed stdout may stop it
    event = {
        "jsonrpc": "2.0",
        "method": "broker.event",
        "params": {"topic": "plugin.outbound.proc", "event": {"payload": 1}},
    }
    plugin.stdin.write(json.dumps(event).encode() + b"\n")
    plugin.stdin.flush()
    try:
        assert plugin.wait(timeout=5) == 0
    finally:
        plugin.kill()
        plugin.stdin.close()
    assert plugin.stderr is not None
    stderr = plugin.stderr.read()
    plugin.stderr.close()
    assert b"stdout closed" in stderr
    assert b"Traceback" not in stderr


FLOOD = """
from nexo_plugin_runtime import PluginContext

def on_start(plugin: PluginContext[None]) -> None:
    plugin.run_background(flood, plugin)

async def flood(plugin: PluginContext[None]) -> None:
    while True:
        await plugin.publish("plugin.inbound.proc", {"pad": "x" * 1000})
"""


def resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert found
    return int(found[1])


def test_a_stuck_daemon_neither_grows_the_plugin_nor_holds_it_past_its_grace(
    tmp_path: Path,
) -> None:
    folder = plugin_tree(tmp_path / "p", FLOOD)
    with PluginHost(command(folder), project=folder, env=environment(folder)) as host:
        host.initialize()
        host.stop_reading()  # the daemon is stuck: its pipe fills, and the plugin's buffer
        time.sleep(0.5)
        before = resident_kib(host.process.pid)
        time.sleep(1.5)  # unbounded, the flood grew the plugin by over 25 MiB a second
        grown = resident_kib(host.process.pid) - before
        assert grown < 4096, f"{grown} KiB more while the daemon did not read"
        asked = time.monotonic()
        host.process.send_signal(signal.SIGTERM)
        assert host.wait() == 0
        assert time.monotonic() - asked < STOPS_PROMPTLY
        host.resume_reading()
        assert "the daemon stopped reading stdout: the last frames are dropped" in host.stderr()


def test_frames_to_a_file_are_written_plainly(tmp_path: Path) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO)
    frames = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "broker.event",
            "params": {"topic": "plugin.outbound.proc", "event": {"payload": 7}},
        }
    ).encode()
    with open(tmp_path / "out", "wb") as out:
        done = subprocess.run(
            command(folder), input=INITIALIZE + frames + b"\n", stdout=out, stderr=subprocess.PIPE,
            env=environment(folder, PROC_LOG_LEVEL="chatty"), timeout=20,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = [strict_json(line) for line in (tmp_path / "out").read_bytes().splitlines()]
    assert [frame.get("id", frame.get("method")) for frame in written] == [1, "broker.publish"]
    assert b"PROC_LOG_LEVEL='CHATTY' is not a logging level" in done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-manifest", "cannot read the plugin manifest"),
        ("bad-toml", "not a usable manifest (TOMLDecodeError"),
        ("id-not-a-string", "plugin.id and plugin.version must be strings"),
        ("no-init", "has no __init__.py"),
    ],
)
def test_a_plugin_whose_files_are_broken_says_which(
    tmp_path: Path, change: str, message: str
) -> None:
    folder = plugin_tree(tmp_path / "p", ECHO)
    manifest = folder / "nexo-plugin.toml"
    if change == "no-manifest":
        manifest.unlink()
    elif change == "bad-toml":
        manifest.write_text("[plugin\n")
    elif change == "id-not-a-string":
        manifest.write_text(manifest.read_text().replace('id = "proc"', "id = 7"))
    else:
        (folder / "src" / "proc" / "__init__.py").unlink()
    done = run(folder, "--check", input=b"")
    assert done.returncode == 1
    assert message in done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_the_probe_and_a_missing_sdk(tmp_path: Path) -> None:
    # Without the SDK installed, the probe still answers and a start says what to install.
    folder = plugin_tree(tmp_path / "p", ECHO)
    bare = {"PYTHONPATH": f"{folder / 'src'}{os.pathsep}{TEMPLATE / 'runtime' / 'src'}"}
    # -S leaves site-packages (and so the SDK) off the path; -I keeps PYTHONPATH out.
    isolated = [sys.executable, "-I", "-S", "-c", "import sys; sys.path[:0] = sys.argv[1].split(':'); "
                "from proc.main import main; sys.exit(main(sys.argv[2:]))", bare["PYTHONPATH"]]  # fmt: skip
    probe = subprocess.run([*isolated, "--print-manifest"], capture_output=True, timeout=20)
    assert probe.stdout == (folder / "nexo-plugin.toml").read_bytes()
    check = subprocess.run([*isolated, "--check"], capture_output=True, timeout=20)
    assert check.returncode == 1
    assert b"the nexoai SDK (nexo_plugin_sdk) is not installed" in check.stderr
