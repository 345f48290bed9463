"""Render a plugin with default answers and show it answering a scripted nexo handshake.

python3 dev.py demo [DESTINATION]      (default: a new temporary folder)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from environments import find_python, first_steps
from rendering import TEMPLATE_ROOT, copier_cli
from scripted_host import INIT, ScriptedHost


def show(arrow: str, frame: dict[str, object]) -> None:
    text = json.dumps(frame)
    print(f"  {arrow} {text if len(text) <= 160 else text[:157] + '...'}")


def main(argv: list[str]) -> int:
    parent = Path(argv[0]).resolve() if argv else Path(tempfile.mkdtemp(prefix="nexo-demo-"))
    destination = parent / "my_plugin"
    run = copier_cli(
        "copy", "--defaults", "--vcs-ref", "HEAD", str(TEMPLATE_ROOT), str(destination)
    )
    if run.returncode != 0:
        print(run.stdout + run.stderr, file=sys.stderr)
        return run.returncode
    print(f"rendered {destination} with the default answers (copier copy, no --trust)")
    launcher = destination / "bin" / "my_plugin"

    probe = subprocess.run([str(launcher), "--print-manifest"], capture_output=True, text=True)
    print(f"\n$ bin/my_plugin --print-manifest  (exit {probe.returncode}, before any install)")
    print("  " + "\n  ".join(probe.stdout.splitlines()[4:9]) + "\n  ...")

    print("\nthe README's first steps: git init, uv sync (the SDK, the dev tools, uv.lock), commit")
    first_steps(destination, find_python("3.10") or sys.executable)

    print(f"\nscripted handshake with bin/my_plugin, run from {parent}:")
    topic = "plugin.outbound.my_plugin"
    event = {"topic": topic, "source": "demo", "session_id": None, "payload": {"text": "hello"}}
    with ScriptedHost([str(launcher)], cwd=parent) as host:
        show("->", INIT)
        show("<-", host.call(INIT))
        notification = {
            "jsonrpc": "2.0",
            "method": "broker.event",
            "params": {"topic": topic, "event": event},
        }
        show("->", notification)
        host.send(notification)
        show("<-", host.frame())
        shutdown = {"jsonrpc": "2.0", "id": 2, "method": "shutdown"}
        show("->", shutdown)
        show("<-", host.call(shutdown))
        print(f"  plugin exited with {host.exit_code()}")
    print(f"\nNext: cd {destination} && uv run pytest")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
