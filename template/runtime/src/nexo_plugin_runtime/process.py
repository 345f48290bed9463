"""The steps of the plugin process's start, in the order the plugin's main.py calls them.

1. `--print-manifest`, the daemon's discovery probe, is answered with nothing but os and sys
   loaded (bin/<id> answers it even earlier, in its shell part).
2. Until the session takes them over, SIGTERM and SIGINT end the process at once: nothing is
   in flight yet.
3. stdin must be a pipe or a socket, where a daemon can be: anything else exits 2 with a
   hint instead of waiting forever.
4. Descriptor 1 is kept for JSON-RPC frames only: the real stdout moves to a private
   descriptor for the session, and descriptor 1 becomes a copy of stderr, so print(),
   logging, C extensions and child processes can only ever write to stderr.
5. Logging: one line per record on stderr (the daemon reads it line by line), secrets
   masked there and in anything else written to sys.stderr.
6. The plugin is loaded and started (startup.py) before anything is read from stdin: when
   it cannot serve, the daemon gets no `initialize` reply, exit code 1 and the reason on
   one line of stderr (the daemon keeps the last lines of stderr for its crash report).
   `initialize` is answered as soon as nothing can refuse the start any more: before
   asyncio and the SDK load, unless on_start is `async def`. Then the session
   (session.py) serves the daemon until it stops the plugin.
"""

from __future__ import annotations

import os
import sys

from .manifest import Manifest, load, plugin_root, read_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .startup import LoadedPlugin

__all__ = [
    "command",
    "configure_logging",
    "exit_quietly_on_signals",
    "fence_stdout",
    "no_daemon",
    "print_manifest",
    "read_manifest",
    "serve",
    "stdin_is_a_stream",
]

USAGE = """\
usage: bin/{plugin_id} [--print-manifest | --check | --help]

This is the "{plugin_id}" nexo plugin. The nexo daemon starts it and speaks newline-delimited
JSON-RPC 2.0 on its stdin and stdout; logs go to stderr.

  --print-manifest   print nexo-plugin.toml and exit (the daemon's discovery probe)
  --check            check handlers.py against nexo-plugin.toml, and the runtime against
                     the template version it follows, and exit

Run it inside a daemon with `nexo plugin run .` from the project folder, or pipe frames in:
  echo '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"nexo_version":"0.1.5"}}}}' \\
    | bin/{plugin_id}
"""


def print_manifest(package: str | None) -> int:
    """The discovery probe: nexo-plugin.toml on stdout, verbatim."""
    sys.stdout.buffer.write(read_bytes(plugin_root(package)))
    sys.stdout.buffer.flush()
    return 0


def exit_quietly_on_signals() -> None:
    """Until the session takes SIGTERM and SIGINT over, exit 0 at once on either. os._exit,
    because an exception raised in a signal handler can land in a callback that swallows it
    (an import lock's, for one)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def defer_signals(received: list[str]) -> None:
    """Once `initialize` is answered, SIGTERM and SIGINT must reach on_shutdown: until the
    session takes them over, note them in `received` for it."""
    import signal

    def note(signum: int, frame: object) -> None:
        received.append(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, note)
    signal.signal(signal.SIGINT, note)


def read_manifest(package: str | None) -> Manifest:
    """nexo-plugin.toml of the plugin whose package is `package`; SystemExit with the reason
    when it cannot be read."""
    try:
        return load(package)
    except ImportError as error:  # tomli, before Python 3.11
        raise SystemExit(missing_dependency(str(package), error)) from None


def missing_dependency(plugin_id: str, error: ImportError) -> str:
    return (
        f"{plugin_id}: cannot start: {error}. In a checkout, install the dependencies "
        "(`uv sync`); an installed plugin vendors them in lib/."
    )


def command(manifest: Manifest, args: list[str]) -> int:
    """What bin/<id> does with arguments (the daemon gives none): --check, --help."""
    if args in (["-h"], ["--help"]):
        sys.stderr.write(USAGE.format(plugin_id=manifest.id))
        return 0
    if args == ["--check"]:
        return check(manifest)
    sys.stderr.write(f"{manifest.id}: unknown arguments {args}\n\n")
    sys.stderr.write(USAGE.format(plugin_id=manifest.id))
    return 2


def check(manifest: Manifest) -> int:
    """--check: handlers.py against the manifest, as the start does it, without starting; and
    the runtime's files against the template version the plugin follows."""
    from .integrity import runtime_problems

    problems = runtime_problems(manifest.root)
    try:
        from .startup import StartError, load

        loaded = load(manifest)
    except StartError as error:
        problems += error.problems
    except ImportError as error:
        problems.append(missing_dependency(manifest.id, error))
    for problem in problems:
        sys.stderr.write(f"{manifest.id}: {problem}\n")
    if problems:
        return 1
    tools = ", ".join(loaded.tool_names) or "none"
    sys.stderr.write(f"{manifest.id}: handlers.py and nexo-plugin.toml agree (tools: {tools})\n")
    return 0


def stdin_is_a_stream() -> bool:
    import stat

    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def no_daemon(manifest: Manifest) -> int:
    sys.stderr.write(f"{manifest.id}: stdin is not a pipe or socket, so no daemon is there.\n\n")
    sys.stderr.write(USAGE.format(plugin_id=manifest.id))
    return 2


def fence_stdout() -> int:
    """Move the real stdout to a private descriptor (returned) and make descriptor 1 and
    sys.stdout point at stderr."""
    sys.stdout.flush()
    frames = os.dup(1)
    os.dup2(2, 1)  # nexo: allow-stdout (the point: descriptor 1 becomes stderr)
    sys.stdout = sys.stderr
    return frames


def configure_logging(manifest: Manifest) -> None:
    """One line per record on stderr, secrets masked; the level comes from <ID>_LOG_LEVEL.
    Whatever else writes to sys.stderr (print, a traceback) is masked too."""
    import logging

    from .redaction import RedactingFormatter, RedactingStream

    stream = RedactingStream(sys.stderr)
    sys.stderr = sys.stdout = stream
    variable = f"{manifest.id.upper()}_LOG_LEVEL"
    wanted = os.environ.get(variable, "INFO").strip().upper()
    level = logging.getLevelName(wanted)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level if isinstance(level, int) else logging.INFO, handlers=[handler])
    if not isinstance(level, int):
        logging.getLogger(manifest.id).warning(
            "%s=%r is not a logging level (DEBUG, INFO, WARNING, ERROR); using INFO",
            variable,
            wanted,
        )


def read_some(fd: int) -> bytes:
    """Up to 64 KiB from `fd`, waiting for them also when it is non-blocking (a daemon may
    hand over a socket in non-blocking mode)."""
    while True:
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            import select

            select.select([fd], [], [])


def read_first_frame(fd: int = 0) -> tuple[bytes, bytes]:
    """(the first line, what came after it) from stdin, read directly (asyncio is not
    loaded yet); the line is empty when stdin ends first or the line is longer than a frame
    may be, and then everything read is in the second part, for the session to handle."""
    from .frames import MAX_FRAME_BYTES

    data = bytearray()
    while b"\n" not in data and len(data) <= MAX_FRAME_BYTES:
        chunk = read_some(fd)
        if not chunk:
            return b"", bytes(data)
        data += chunk
    line, newline, rest = bytes(data).partition(b"\n")
    return (line, rest) if newline else (b"", bytes(data))


def answer_initialize_early(
    loaded: LoadedPlugin, frames: int, stdin_fd: int = 0, signals: list[str] | None = None
) -> tuple[bool, bytes]:
    """Answer the first frame if it is `initialize`: (whether it was, the stdin read beyond
    what was answered). Everything that could refuse the start has run by now. From just
    before the reply, SIGTERM and SIGINT are noted in `signals` (defer_signals())."""
    from .frames import decode, encode, initialize_reply

    line, rest = read_first_frame(stdin_fd)
    try:
        request = decode(line) if line.strip() else None
    except (ValueError, RecursionError):
        request = None
    if not (isinstance(request, dict) and request.get("method") == "initialize"):
        return False, (line + b"\n" + rest if line else rest)
    reply = initialize_reply(request.get("id"), encode(loaded.initialize_result()))
    if signals is not None:
        defer_signals(signals)
    data = memoryview((reply + "\n").encode("ascii"))
    while data:
        data = data[os.write(frames, data) :]
    return True, rest


def serve(manifest: Manifest, frames: int, *, stdin_fd: int = 0, signals: bool = True) -> int:
    """Start the plugin, then serve the daemon on stdin and `frames` until it stops the
    plugin; the exit code. `frames` is closed when it returns. (`stdin_fd` and `signals`:
    for running a plugin in a thread.)"""
    import logging

    from .startup import StartError, load, prepare, start_in_the_loop

    def refuse(error: StartError) -> int:
        logging.getLogger(manifest.id).error("cannot start: %s", error)
        os.close(frames)  # no reply will ever come: the daemon sees the end at once
        return 1

    received_signals: list[str] = []
    try:
        loaded = load(manifest)
        prepare(loaded)
        answered, read_before = (
            (False, b"")
            if loaded.starts_in_the_loop
            else answer_initialize_early(
                loaded, frames, stdin_fd, received_signals if signals else None
            )
        )
    except StartError as error:
        return refuse(error)

    import asyncio

    from .session import Session

    async def run() -> int:
        loop = asyncio.get_running_loop()
        if hasattr(asyncio, "eager_task_factory"):  # Python 3.12+
            loop.set_task_factory(asyncio.eager_task_factory)
        if loaded.starts_in_the_loop:
            await start_in_the_loop(loaded)
        session = Session(loaded)
        if answered:
            session.handshake_is_done()
        return await session.run(
            frames, read_before, stdin_fd=stdin_fd, signals=signals, received=received_signals
        )

    try:
        return asyncio.run(run())
    except StartError as error:
        return refuse(error)
