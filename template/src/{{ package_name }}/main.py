"""Process entry point: the wiring between the nexo daemon, the nexoai SDK and handlers.py.

This file follows the template (`copier update` refreshes it); put plugin behaviour in
handlers.py. Order matters here:

1. `--print-manifest` is answered first, with nothing but the standard library loaded: the
   daemon probes every candidate binary with it at each discovery (bin/<id> answers it
   even earlier, in its shell part).
2. stdin must be a pipe or a socket: the SDK hangs silently on anything else.
3. File descriptor 1 is kept for JSON-RPC frames only. The real stdout is moved to a
   private descriptor for the SDK, and descriptor 1 becomes a copy of stderr, so print(),
   logging, C extensions and child processes can only ever write to stderr.
4. The daemon's `initialize` is answered as soon as it arrives, before asyncio and the SDK
   are imported (most of a Python plugin's start-up), with the reply the SDK would give.
   Plugins that declare tools let the SDK answer, since the tool list comes from it.
"""

import json
import os
import sys

MANIFEST_FILE = "nexo-plugin.toml"
PROBE_FLAG = "--print-manifest"
# The longest first frame read before the SDK takes over stdin; `initialize` is far shorter.
FIRST_FRAME_LIMIT = 64 * 1024
USAGE = """\
usage: bin/{plugin_id} [--print-manifest]

This is the "{plugin_id}" nexo plugin. The nexo daemon starts it and speaks newline-delimited
JSON-RPC 2.0 on its stdin and stdout; logs go to stderr.

  --print-manifest   print nexo-plugin.toml and exit (the daemon's discovery probe)

Run it inside a daemon with `nexo plugin run .` from the project folder, or pipe frames in:
  echo '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"nexo_version":"0.1.5"}}}}' \\
    | bin/{plugin_id}
"""


def manifest_path() -> str:
    """nexo-plugin.toml sits two folders above this package: src/<pkg>/ or lib/<pkg>/."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(package_dir)), MANIFEST_FILE)


def read_manifest_bytes() -> bytes:
    try:
        with open(manifest_path(), "rb") as manifest:
            return manifest.read()
    except OSError as error:
        raise SystemExit(
            f"cannot read the plugin manifest: {error}. Run the plugin through bin/<id> in its "
            f"project checkout or installed folder, where {MANIFEST_FILE} sits beside bin/."
        ) from None


def print_manifest() -> int:
    sys.stdout.buffer.write(read_manifest_bytes())  # nexo: allow-stdout
    sys.stdout.buffer.flush()
    return 0


def parse_manifest(text: str) -> dict:
    """The manifest as the SDK reads it (tomllib, or tomli before Python 3.11)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib

    try:
        manifest = tomllib.loads(text)
        plugin = manifest["plugin"]
        if isinstance(plugin["id"], str) and isinstance(plugin["version"], str):
            return manifest
        problem = "plugin.id and plugin.version must be strings"
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
    raise SystemExit(f"{manifest_path()}: not a usable manifest ({problem})")


def stdin_is_stream() -> bool:
    import stat

    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def fence_stdout():
    """Return a text stream on the real stdout and point descriptor 1 and sys.stdout at stderr."""
    frames = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return frames


def read_first_line() -> bytes | None:
    """The first frame, read byte by byte so that nothing after it leaves the pipe; None
    when stdin closes before the first byte."""
    line = bytearray()
    while len(line) < FIRST_FRAME_LIMIT:
        byte = os.read(0, 1)
        if not byte:
            return bytes(line) if line else None
        if byte == b"\n":
            break
        line += byte
    return bytes(line)


def answer_initialize(first_line: bytes, manifest: dict, frames) -> bool:
    """Reply to an `initialize` request as the SDK would; False when it is something else."""
    if "extends" in manifest["plugin"]:
        return False  # declared tools: the SDK builds the reply from handlers.tools()
    try:
        request = json.loads(first_line)
    except ValueError:
        return False
    if not isinstance(request, dict) or request.get("method") != "initialize":
        return False
    if "id" not in request:
        return False
    plugin = manifest["plugin"]
    result = {"manifest": manifest, "server_version": f"{plugin['id']}-{plugin['version']}"}
    frames.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}) + "\n")
    frames.flush()
    return True


def exit_quietly_on_signals() -> None:
    """Until the SDK's loop takes SIGTERM and SIGINT over (and drains handlers on them),
    exit 0 at once on either: nothing is in flight yet. os._exit, because an exception
    raised in a signal handler can land in a callback that swallows it."""
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == [PROBE_FLAG]:
        return print_manifest()

    manifest_text = read_manifest_bytes().decode("utf-8")
    manifest = parse_manifest(manifest_text)
    plugin_id = manifest["plugin"]["id"]
    if args in (["-h"], ["--help"]):
        sys.stderr.write(USAGE.format(plugin_id=plugin_id))
        return 0
    if args:
        sys.stderr.write(f"{plugin_id}: unknown arguments {args}\n\n")
        sys.stderr.write(USAGE.format(plugin_id=plugin_id))
        return 2
    if not stdin_is_stream():
        sys.stderr.write(f"{plugin_id}: stdin is not a pipe or socket, so no daemon is there.\n\n")
        sys.stderr.write(USAGE.format(plugin_id=plugin_id))
        return 2

    frames = fence_stdout()
    exit_quietly_on_signals()
    first_line = read_first_line()
    if first_line is None:
        return 0  # the daemon closed stdin before saying anything
    if answer_initialize(first_line, manifest, frames):
        first_line = b""
    configure_logging(plugin_id)

    import asyncio

    from .runtime import build_adapter

    adapter = build_adapter(manifest_text, manifest, frames)
    asyncio.run(adapter.serve(first_line.decode("utf-8", "replace")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
