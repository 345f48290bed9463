"""Flag plugin code that writes to standard output by descriptor or device, which a linter cannot.

    nexo-stdout FILE.py ...                  (the `nexo-stdout` pre-commit hook)
    python scripts/nexo_stdout.py FILE.py ...    (the same file, in every generated plugin)

stdout carries the daemon's JSON-RPC frames. Generated plugins already send stray writes to
stderr at run time; this catches them before they ship. The writes a linter can see by name
are ruff's job in every generated project: `print()` (T201), and `sys.stdout` or
`sys.__stdout__` however they are imported or aliased (TID251, banned-api). What stays here is
stdout reached by number or path: descriptor 1 given to `os.write`, `os.writev`, `os.fdopen`,
`open`, `io.open`, `io.FileIO`, `os.dup2` (as the target), `os.sendfile`, or the paths
`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`. To keep a line on purpose, end it with the
comment `# nexo: allow-stdout`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOW = "# nexo: allow-stdout"
STDOUT_PATHS = {"/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"}
# Callable name (as written, last two parts) -> the argument naming the file: its position
# and its keyword.
BY_DESCRIPTOR = {
    "open": (0, "file"),
    "io.open": (0, "file"),
    "io.FileIO": (0, "file"),
    "FileIO": (0, "file"),
    "os.fdopen": (0, "fd"),
    "fdopen": (0, "fd"),
    "os.write": (0, "fd"),
    "os.writev": (0, "fd"),
    "os.sendfile": (0, "out_fd"),
    "os.dup2": (1, "fd2"),
}


def _callee(call: ast.Call) -> str:
    """The called name's last two parts: os.write, io.open, open."""
    parts = []
    node = call.func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts[:2]))


def _is_stdout(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and (
        (node.value == 1 and not isinstance(node.value, bool)) or node.value in STDOUT_PATHS
    )


def _problem(call: ast.Call) -> str | None:
    name = _callee(call)
    if name not in BY_DESCRIPTOR:
        return None
    position, keyword = BY_DESCRIPTOR[name]
    target = call.args[position] if len(call.args) > position else None
    target = next((k.value for k in call.keywords if k.arg == keyword), target)
    if target is not None and _is_stdout(target):
        return f"{name}() on stdout ({ast.unparse(target)}): write to stderr or use logging"
    return None


def problems(source: bytes, filename: str) -> list[str]:
    """Each stdout write in `source`, as `file:line:column: message`; any encoding."""
    try:
        tree = ast.parse(source, filename)  # bytes: honours a coding declaration
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None) or 1
        return [f"{filename}:{line}: cannot parse: {getattr(error, 'msg', error)}"]
    lines = source.decode("utf-8", "replace").splitlines()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        message = _problem(node)
        if message and ALLOW not in lines[node.lineno - 1]:
            found.append((node.lineno, node.col_offset + 1, message))
    return [f"{filename}:{line}:{column}: {message}" for line, column, message in sorted(found)]


def main(argv: list[str] | None = None) -> int:
    found = []
    for name in sys.argv[1:] if argv is None else argv:
        found += problems(Path(name).read_bytes(), name)
    for line in found:
        print(line)
    if any("cannot parse" not in line for line in found):
        print(f"\nstdout carries JSON-RPC only. Mark a deliberate line with `{ALLOW}`.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
