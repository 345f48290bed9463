"""How the plugin process starts: bin/<id> runs main(), and this is all of it.

Each step is a function of the runtime (runtime/src/nexo_plugin_runtime/process.py says
why each is there, and why in this order: it keeps the daemon's stream clean and the start
fast). This file is yours, but rarely needs a change: what the plugin does is in
handlers.py. `python -m <id>.main` runs it too.
"""

from __future__ import annotations

import sys

from nexo_plugin_runtime import process


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    package = __package__  # this plugin's package, named like the plugin
    if args == ["--print-manifest"]:  # the daemon's discovery probe: the manifest, and only it
        return process.print_manifest(package)
    process.exit_quietly_on_signals()  # until the session takes SIGTERM and SIGINT over
    manifest = process.read_manifest(package)
    if args:  # --check, --help: for people; the daemon passes no arguments
        return process.command(manifest, args)
    if not process.stdin_is_a_stream():  # no daemon can be there: say so, do not wait
        return process.no_daemon(manifest)
    frames = process.fence_stdout()  # descriptor 1 becomes stderr; frames get their own
    process.configure_logging(manifest)  # one line per record on stderr, secrets masked
    return process.serve(manifest, frames)  # start checks, initialize, the session


if __name__ == "__main__":
    sys.exit(main())
