"""Compiled bytecode for the installed plugin, never written into its folder, never trusted
from a place another user controls.

An installed plugin runs `python3 -I -S -B`, so it never writes into its folder, which may
be read-only and belongs to the operator. Without bytecode, though, every start would
compile all the vendored code again. So:

- the release tarball ships bytecode for each CPython it was packed with, in the usual
  `__pycache__/` (unchecked hash-based pycs): Python's own loader uses it;
- for any other CPython, the vendored folders get a loader that keeps compiled modules
  under `$XDG_CACHE_HOME/nexo/bytecode/` (default `~/.cache/nexo/bytecode/`), at the mirror
  of their path. The cache is used only when the user alone controls it: every folder of
  it owned by the user and writable by nobody else, each ancestor owned by the user or root
  and, if others may write to it, sticky (as /tmp is); `XDG_CACHE_HOME` must be absolute.
  Otherwise there is one warning and modules compile in memory. Files are written without
  following symlinks (a new file, then renamed into place) and read only when the user owns
  them. Each is a checked hash-based pyc (PEP 552): it is used only while the source's
  content hash matches, so a changed source is never served stale code.
"""

import contextlib
import marshal
import os
import stat
import sys
from importlib import machinery, util

HEADER_SIZE = 16
CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, check the source


def cache_root() -> str:
    """The cache folder, or "" when $XDG_CACHE_HOME is set but relative (refused)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base is not None and base and not os.path.isabs(base):
        return ""
    return os.path.join(base or os.path.join(os.path.expanduser("~"), ".cache"), "nexo", "bytecode")


def _private(path: str, uid: int) -> bool:
    """A real folder of the user's that nobody else may write to."""
    info = os.lstat(path)
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == uid
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _safe_ancestor(path: str, uid: int) -> bool:
    info = os.stat(path)
    if info.st_uid not in (uid, 0):
        return False
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return not shared or bool(info.st_mode & stat.S_ISVTX)


def usable_root(root: str) -> str | None:
    """Why `root` cannot be the cache (after creating what is missing of it), or None."""
    if not root:
        return "XDG_CACHE_HOME is not an absolute path"
    uid = os.getuid()
    base = os.path.dirname(os.path.dirname(root))  # $XDG_CACHE_HOME
    ancestor = os.path.dirname(base)
    while True:
        if not _safe_ancestor(ancestor, uid):
            return f"{ancestor} may be changed by another user"
        if os.path.dirname(ancestor) == ancestor:
            break
        ancestor = os.path.dirname(ancestor)
    for folder in (base, os.path.dirname(root), root):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        if not _private(folder, uid):
            return f"{folder} is not a folder of this user's that only this user may change"
    return None


class CachedSourceLoader(machinery.SourceFileLoader):
    """A source loader whose bytecode lives under the cache root, not beside the source."""

    root: str | None = None  # "" once found unusable

    @classmethod
    def cache(cls) -> str:
        """The cache folder, checked on first use; "" (and one warning) when unusable."""
        if cls.root is None:
            root = cache_root()
            try:
                problem = usable_root(root)
            except OSError as error:
                problem = f"{root}: {error.strerror}"
            if problem is not None:
                sys.stderr.write(f"bytecode cache not used ({problem}): compiling in memory\n")
            cls.root = "" if problem else root
        return cls.root

    def get_code(self, fullname: str):  # type: ignore[no-untyped-def]
        source_path = self.get_filename(fullname)
        if os.path.exists(util.cache_from_source(source_path)):  # shipped in the tarball
            return super().get_code(fullname)
        source = self.get_data(source_path)
        root = self.cache()
        if not root:
            return self.source_to_code(source, source_path)
        header = util.MAGIC_NUMBER + CHECKED_HASH.to_bytes(4, "little") + util.source_hash(source)
        cached = f"{root}{os.path.abspath(source_path)}.{sys.implementation.cache_tag}.pyc"
        try:
            descriptor = os.open(cached, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                if os.fstat(descriptor).st_uid == os.getuid():
                    with os.fdopen(descriptor, "rb", closefd=False) as compiled:
                        data = compiled.read()
                    if data[:HEADER_SIZE] == header:
                        return marshal.loads(data[HEADER_SIZE:])
            finally:
                os.close(descriptor)
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = self.source_to_code(source, source_path)
        _write_private(cached, header + marshal.dumps(code), root)
        return code


def _write_private(path: str, data: bytes, root: str) -> None:
    """Write `path` under `root` as a new file of this user's, never through a symlink."""
    try:
        folder = os.path.dirname(path)
        missing = []
        while folder != root and not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        for created in reversed(missing):
            os.mkdir(created, 0o700)
        if not _private(os.path.dirname(path), os.getuid()):
            return
        partial = f"{path}.{os.getpid()}.partial"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(partial, flags, 0o600)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        os.replace(partial, path)
    except OSError:
        pass  # no cache this time: the code still runs


def install(folders: list[str]) -> None:
    """Load modules found in `folders` (and below) through CachedSourceLoader."""
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
