"""Compiled bytecode for the installed plugin, never written into its folder.

This file follows the template. An installed plugin runs `python3 -I -S -B`, so it never
writes into its folder, which may be read-only and belongs to the operator. Without
bytecode, though, every start would compile all the vendored code again (the cost is in
the template's benchmarks/RESULTS.md). So:

- the release tarball ships bytecode for each CPython it was packed with
  (scripts/pack_tarball.py), in the usual `__pycache__/`: Python's own loader uses it;
- for any other CPython, the vendored folders get a loader that keeps compiled modules
  under `$XDG_CACHE_HOME/nexo/bytecode/` (default `~/.cache/nexo/bytecode/`), at the mirror
  of their path, in folders only the user can read (0700): from the second start on, they
  load from there. Where the cache cannot be written, modules compile in memory.

Cached files are checked like Python's own (PEP 552, by the source's mtime and size): a
release carries the time of its commit, so an upgrade in place invalidates them.
"""

import marshal
import os
import sys
from importlib import machinery, util

HEADER_SIZE = 16


def cache_root() -> str:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "nexo", "bytecode")


class CachedSourceLoader(machinery.SourceFileLoader):
    """A source loader whose bytecode lives under the cache root, not beside the source."""

    root = ""

    def get_code(self, fullname: str):  # type: ignore[no-untyped-def]
        source_path = self.get_filename(fullname)
        if os.path.exists(util.cache_from_source(source_path)):  # shipped in the tarball
            return super().get_code(fullname)
        cached = f"{self.root}{os.path.abspath(source_path)}.{sys.implementation.cache_tag}.pyc"
        stat = os.stat(source_path)
        stamp = (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        stamp += (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        header = util.MAGIC_NUMBER + b"\0\0\0\0" + stamp
        try:
            with open(cached, "rb") as compiled:
                data = compiled.read()
            if data[:HEADER_SIZE] == header:
                return marshal.loads(data[HEADER_SIZE:])
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = self.source_to_code(self.get_data(source_path), source_path)
        try:
            os.makedirs(os.path.dirname(cached), mode=0o700, exist_ok=True)
            partial = f"{cached}.{os.getpid()}"
            with open(partial, "wb") as compiled:
                compiled.write(header + marshal.dumps(code))
            os.replace(partial, cached)
        except OSError:
            pass  # no cache this time: the code still runs
        return code


def install(folders: list[str]) -> None:
    """Load modules found in `folders` (and below) through CachedSourceLoader."""
    root = cache_root()
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError:
        return
    CachedSourceLoader.root = root
    loaders = [
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (CachedSourceLoader, machinery.SOURCE_SUFFIXES),
    ]
    prefixes = tuple(os.path.join(folder, "") for folder in folders)

    def finder_for(path: str) -> machinery.FileFinder:
        if (path in folders or path.startswith(prefixes)) and os.path.isdir(path):
            return machinery.FileFinder(path, *loaders)
        raise ImportError("not a vendored folder")

    sys.path_hooks.insert(0, finder_for)
    for path in list(sys.path_importer_cache):
        if path in folders or path.startswith(prefixes):
            del sys.path_importer_cache[path]
