"""Process entry point: how the plugin process meets the daemon. Put behaviour in handlers.py.

This file follows the template (`copier update` refreshes it). In order:

1. `--print-manifest`, the daemon's discovery probe, is answered first, with nothing but
   the standard library loaded (bin/<id> answers it even earlier, in its shell part).
2. stdin must be a pipe or a socket, where a daemon can be: anything else exits 2 with a
   hint instead of waiting forever.
3. Descriptor 1 is kept for JSON-RPC frames only: the real stdout moves to a private
   descriptor for the session, and descriptor 1 becomes a copy of stderr, so print(),
   logging, C extensions and child processes can only ever write to stderr.
4. The plugin is loaded and started (startup.py) before anything is read from stdin: when
   it cannot serve, the daemon gets no `initialize` reply, exit code 1 and the reason on
   one line of stderr (the daemon keeps the last lines of stderr for its crash report).
5. `initialize` is answered as soon as nothing can refuse the start any more: before
   asyncio and the SDK load, unless on_start is `async def` (see serve()). The start is on
   the daemon's critical path; benchmarks/RESULTS.md of the template has the figures.
6. The session (sdk_adapter.py) serves the daemon until it stops the plugin.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PACKAGE = __name__.rsplit(".", 1)[0]  # the plugin id
MANIFEST_FILE = "nexo-plugin.toml"
PROBE_FLAG = "--print-manifest"
CHECK_FLAG = "--check"
USAGE = """\
usage: bin/{plugin_id} [--print-manifest | --check]

This is the "{plugin_id}" nexo plugin. The nexo daemon starts it and speaks newline-delimited
JSON-RPC 2.0 on its stdin and stdout; logs go to stderr.

  --print-manifest   print nexo-plugin.toml and exit (the daemon's discovery probe)
  --check            check handlers.py against nexo-plugin.toml and exit

Run it inside a daemon with `nexo plugin run .` from the project folder, or pipe frames in:
  echo '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"nexo_version":"0.1.5"}}}}' \\
    | bin/{plugin_id}
"""


def plugin_root() -> str:
    """The plugin's folder: nexo-plugin.toml sits two folders above this package, which is
    src/<package>/ in a checkout and lib/<package>/ once installed."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_manifest_bytes() -> bytes:
    try:
        with open(os.path.join(plugin_root(), MANIFEST_FILE), "rb") as manifest:
            return manifest.read()
    except OSError as error:
        raise SystemExit(
            f"cannot read the plugin manifest: {error}. Run the plugin through bin/<id> in its "
            f"project checkout or installed folder, where {MANIFEST_FILE} sits beside bin/."
        ) from None


def print_manifest() -> int:
    sys.stdout.buffer.write(read_manifest_bytes())
    sys.stdout.buffer.flush()
    return 0


def parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest, read as the SDK reads it (tomllib, or tomli before Python 3.11)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    try:
        manifest: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
        plugin = manifest["plugin"]
        if isinstance(plugin["id"], str) and isinstance(plugin["version"], str):
            return manifest
        problem = "plugin.id and plugin.version must be strings"
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
    where = os.path.join(plugin_root(), MANIFEST_FILE)
    raise SystemExit(f"{where}: not a usable manifest ({problem})")


def stdin_is_stream() -> bool:
    import stat

    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def fence_stdout() -> int:
    """Move the real stdout to a private descriptor (returned) and make descriptor 1 and
    sys.stdout point at stderr."""
    sys.stdout.flush()
    frames = os.dup(1)
    os.dup2(2, 1)  # nexo: allow-stdout (the point: descriptor 1 becomes stderr)
    sys.stdout = sys.stderr
    return frames


def exit_quietly_on_signals() -> None:
    """Until the session takes SIGTERM and SIGINT over, exit 0 at once on either: nothing
    is in flight yet. os._exit, because an exception raised in a signal handler can land
    in a callback that swallows it (an import lock's, for one)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def configure_logging(plugin_id: str) -> None:
    """One line per record on stderr; the level comes from <PLUGIN_ID>_LOG_LEVEL."""
    import logging

    class OneLineFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return super().format(record).replace("\n", "\\n")

    variable = f"{plugin_id.upper()}_LOG_LEVEL"
    wanted = os.environ.get(variable, "INFO").strip().upper()
    level = logging.getLevelName(wanted)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level if isinstance(level, int) else logging.INFO, handlers=[handler])
    if not isinstance(level, int):
        logging.getLogger(plugin_id).warning(
            "%s=%r is not a logging level (DEBUG, INFO, WARNING, ERROR); using INFO",
            variable,
            wanted,
        )


def missing_dependency(error: ImportError) -> int:
    sys.stderr.write(
        f"{PACKAGE}: cannot start: {error}. In a checkout, install the dependencies "
        "(`uv sync`); an installed plugin vendors them in lib/.\n"
    )
    return 1


def check(manifest: dict[str, Any]) -> int:
    """--check: handlers.py against the manifest, as the start does it, without starting."""
    try:
        from .startup import StartError, load
    except ImportError as error:
        return missing_dependency(error)
    try:
        loaded = load(manifest, plugin_root())
    except StartError as error:
        for problem in error.problems:
            sys.stderr.write(f"{manifest['plugin']['id']}: {problem}\n")
        return 1
    tools = ", ".join(sorted(loaded.tool_names)) or "none"
    sys.stderr.write(
        f"{loaded.plugin.id}: handlers.py and {MANIFEST_FILE} agree (tools: {tools})\n"
    )
    return 0


def read_first_frame() -> tuple[bytes, bytes]:
    """(the first line, what came after it) from stdin, read directly (asyncio is not
    loaded yet); the line is empty when stdin ends first or the line is longer than a frame
    may be, and then everything read is in the second part, for the session to handle."""
    from .frames import MAX_FRAME_BYTES

    data = bytearray()
    while b"\n" not in data and len(data) <= MAX_FRAME_BYTES:
        chunk = os.read(0, 65536)
        if not chunk:
            return b"", bytes(data)
        data += chunk
    line, newline, rest = bytes(data).partition(b"\n")
    return (line, rest) if newline else (b"", bytes(data))


def answer_initialize_early(loaded: Any, frames: int) -> tuple[bool, bytes]:
    """Answer the first frame if it is `initialize`: (whether it was, the stdin read beyond
    what was answered). Everything that could refuse the start has run by now."""
    from .frames import decode, encode, initialize_reply

    line, rest = read_first_frame()
    try:
        request = decode(line) if line.strip() else None
    except (ValueError, RecursionError):
        request = None
    if not (isinstance(request, dict) and request.get("method") == "initialize"):
        return False, (line + b"\n" + rest if line else rest)
    reply = initialize_reply(request.get("id"), encode(loaded.initialize_result()))
    data = memoryview((reply + "\n").encode("ascii"))
    while data:
        data = data[os.write(frames, data) :]
    return True, rest


def serve(manifest: dict[str, Any], frames: int) -> int:
    """Start the plugin, then serve the daemon until it stops the plugin.

    The checks of startup.py run first. Then, when on_start is not `async def`, nothing
    more is needed to answer `initialize`: it is answered before asyncio and the SDK load
    (most of a Python plugin's start). An `async def` on_start runs in the loop first."""
    import logging

    try:
        from .startup import StartError, load, prepare, start_in_the_loop
    except ImportError as error:
        return missing_dependency(error)
    try:
        loaded = load(manifest, plugin_root())
        prepare(loaded)
        answered, read_before = (
            (False, b"") if loaded.starts_in_the_loop else answer_initialize_early(loaded, frames)
        )
    except StartError as error:
        logging.getLogger(manifest["plugin"]["id"]).error("cannot start: %s", error)
        return 1

    import asyncio

    from .sdk_adapter import Session

    async def run() -> int:
        loop = asyncio.get_running_loop()
        if hasattr(asyncio, "eager_task_factory"):  # Python 3.12+
            loop.set_task_factory(asyncio.eager_task_factory)
        session = Session(loaded)
        if answered:
            session.handshake_is_done()
        elif loaded.starts_in_the_loop:
            await start_in_the_loop(loaded)
        return await session.run(frames, read_before)

    try:
        return asyncio.run(run())
    except StartError as error:
        logging.getLogger(manifest["plugin"]["id"]).error("cannot start: %s", error)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == [PROBE_FLAG]:
        return print_manifest()

    exit_quietly_on_signals()
    try:
        manifest = parse_manifest(read_manifest_bytes())
    except ImportError as error:
        return missing_dependency(error)
    plugin_id = manifest["plugin"]["id"]
    if args in (["-h"], ["--help"]):
        sys.stderr.write(USAGE.format(plugin_id=plugin_id))
        return 0
    if args == [CHECK_FLAG]:
        return check(manifest)
    if args:
        sys.stderr.write(f"{plugin_id}: unknown arguments {args}\n\n")
        sys.stderr.write(USAGE.format(plugin_id=plugin_id))
        return 2
    if not stdin_is_stream():
        sys.stderr.write(f"{plugin_id}: stdin is not a pipe or socket, so no daemon is there.\n\n")
        sys.stderr.write(USAGE.format(plugin_id=plugin_id))
        return 2

    frames = fence_stdout()
    configure_logging(plugin_id)
    return serve(manifest, frames)


if __name__ == "__main__":
    sys.exit(main())
