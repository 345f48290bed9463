"""Process entry point: the wiring between the nexo daemon, the nexoai SDK and handlers.py.

This file follows the template (`copier update` refreshes it); put plugin behaviour in
handlers.py. Order matters here:

1. `--print-manifest` is answered first, with nothing but the standard library loaded: the
   daemon probes every candidate binary with it at each discovery.
2. stdin must be a pipe or a socket: the SDK hangs silently on anything else.
3. File descriptor 1 is kept for JSON-RPC frames only. The real stdout is moved to a
   private descriptor for the SDK, and descriptor 1 becomes a copy of stderr, so print(),
   logging, C extensions and child processes can only ever write to stderr.
"""

import os
import sys

MANIFEST_FILE = "nexo-plugin.toml"
PROBE_FLAG = "--print-manifest"
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

    from nexo_plugin_sdk import ManifestError, read_manifest

    manifest_text = read_manifest_bytes().decode("utf-8")
    try:
        plugin_id = read_manifest(manifest_text)["plugin"]["id"]
    except ManifestError as error:
        sys.stderr.write(f"{manifest_path()}: {error}\n")
        return 1

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
    configure_logging(plugin_id)

    import asyncio

    from .runtime import build_adapter

    adapter = build_adapter(manifest_text, frames)
    asyncio.run(adapter.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
