"""Flag plugin code that writes to stdout, which carries the daemon's JSON-RPC frames.

    nexo-stdout FILE.py ...          (the `nexo-stdout` pre-commit hook)

Reports `print(...)` without `file=`, writes through `sys.stdout` or `sys.__stdout__`,
`os.write(1, ...)`, and logging handlers on stdout. Generated plugins already send such
writes to stderr at run time; this catches them before they ship. To keep a line on
purpose, end it with the comment `# nexo: allow-stdout`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOW = "# nexo: allow-stdout"
STDOUT_NAMES = {"stdout", "__stdout__"}
WRITES = {"write", "writelines"}


def _is_stdout(node: ast.AST) -> bool:
    """sys.stdout / sys.__stdout__, or anything reached from them (sys.stdout.buffer)."""
    while isinstance(node, ast.Attribute):
        if node.attr in STDOUT_NAMES and isinstance(node.value, ast.Name):
            return node.value.id == "sys"
        node = node.value
    return False


def _problem(call: ast.Call) -> str | None:
    func = call.func
    keywords = {keyword.arg for keyword in call.keywords}
    if isinstance(func, ast.Name) and func.id == "print":
        file = next((k.value for k in call.keywords if k.arg == "file"), None)
        if "file" not in keywords or (file is not None and _is_stdout(file)):
            return "print() writes to stdout; log with logging (or pass file=sys.stderr)"
    if isinstance(func, ast.Attribute) and func.attr in WRITES and _is_stdout(func.value):
        return f"{ast.unparse(func)}() writes to stdout; use logging or sys.stderr"
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "write"
        and ast.unparse(func.value) == "os"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value == 1
    ):
        return "os.write(1, ...) writes to stdout; write to descriptor 2"
    name = ast.unparse(func)
    if name.endswith("StreamHandler") and any(_is_stdout(arg) for arg in call.args):
        return "a logging handler on sys.stdout; use StreamHandler() (stderr) instead"
    return None


def problems(source: str, filename: str) -> list[str]:
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as error:
        return [f"{filename}:{error.lineno}: cannot parse: {error.msg}"]
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        message = _problem(node) if isinstance(node, ast.Call) else None
        if message and ALLOW not in lines[node.lineno - 1]:
            found.append((node.lineno, node.col_offset + 1, message))
    return [f"{filename}:{line}:{column}: {message}" for line, column, message in sorted(found)]


def main(argv: list[str] | None = None) -> int:
    found = []
    for name in sys.argv[1:] if argv is None else argv:
        found += problems(Path(name).read_text(encoding="utf-8"), name)
    for line in found:
        print(line)
    if found:
        print(f"\nstdout carries JSON-RPC only. Mark a deliberate line with `{ALLOW}`.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
