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
from nexo_plugin_runtime.testing import PluginHost, broker_event
from rendering import TEMPLATE_ROOT, copier_cli


def show(arrow: str, frame: object) -> None:
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

    print("\nthe README's first steps: git init, uv sync (the runtime, the SDK, the tools), commit")
    first_steps(destination, find_python("3.10") or sys.executable)

    print(f"\nscripted handshake with bin/my_plugin, run from {parent}:")
    with PluginHost(project=destination, cwd=parent) as host:
        initialize = {"nexo_version": "0.1.5"}
        show("->", {"method": "initialize", "params": initialize})
        show("<-", host.request("initialize", initialize))
        event = broker_event("plugin.outbound.my_plugin", {"text": "hello"})
        show("->", {"method": "broker.event", "params": event})
        host.notify("broker.event", event)
        show("<-", host.next_notification("broker.publish"))
        show("->", {"method": "shutdown"})
        show("<-", host.request("shutdown"))
        print(f"  plugin exited with {host.wait()}")
    print(f"\nNext: cd {destination} && uv run pytest")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
