"""The installed plugin's bytecode cache (bytecode.py): used only where the user alone
controls it, never following a symlink, and keyed on the source's content, not its time."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import sys
from pathlib import Path

import pytest
from nexo_plugin_runtime import bytecode

_names = itertools.count()


@pytest.fixture
def vendored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vendored folder on sys.path behind the cache's loader, with the cache in tmp_path."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (tmp_path / "cache").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(bytecode.CachedSourceLoader, "root", None)
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    monkeypatch.syspath_prepend(str(folder))
    bytecode.install([str(folder)])
    return folder


def module(folder: Path, source: str) -> tuple[str, Path]:
    name = f"vendored_{os.getpid()}_{next(_names)}"
    path = folder / f"{name}.py"
    path.write_text(source)
    return name, path


def cached_pyc(tmp_path: Path, source: Path) -> Path:
    return Path(f"{tmp_path}/cache/nexo/bytecode{source}.{sys.implementation.cache_tag}.pyc")


def fresh_import(name: str) -> object:
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def test_a_module_compiles_once_into_the_private_cache(vendored: Path, tmp_path: Path) -> None:
    name, source = module(vendored, "VALUE = 1\n")
    assert fresh_import(name).VALUE == 1  # type: ignore[attr-defined]
    pyc = cached_pyc(tmp_path, source)
    header = pyc.read_bytes()[:16]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert header[4:8] == b"\x03\0\0\0"  # PEP 552: hash-based, checked
    assert header[8:] == importlib.util.source_hash(source.read_bytes())
    assert oct(pyc.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "cache" / "nexo" / "bytecode").stat().st_mode & 0o777) == "0o700"
    assert not (vendored / "__pycache__").exists()


def test_a_changed_source_of_the_same_size_and_time_is_never_served_stale(
    vendored: Path, tmp_path: Path
) -> None:
    name, source = module(vendored, "VALUE = 1\n")
    fresh_import(name)
    stat = source.stat()
    source.write_text("VALUE = 2\n")  # same size
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time
    assert fresh_import(name).VALUE == 2  # type: ignore[attr-defined]


def test_a_planted_symlink_is_replaced_not_followed(vendored: Path, tmp_path: Path) -> None:
    name, source = module(vendored, "VALUE = 3\n")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    pyc = cached_pyc(tmp_path, source)
    pyc.parent.mkdir(parents=True, mode=0o700)
    pyc.symlink_to(victim)
    assert fresh_import(name).VALUE == 3  # type: ignore[attr-defined]
    assert victim.read_text() == "precious"
    assert not pyc.is_symlink()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_pyc_of_another_user_is_not_loaded(vendored: Path, tmp_path: Path) -> None:
    name, source = module(vendored, "VALUE = 4\n")
    fresh_import(name)
    pyc = cached_pyc(tmp_path, source)
    forged = bytearray(pyc.read_bytes())
    evil_name, evil_source = module(vendored, "VALUE = 666\n")
    fresh_import(evil_name)
    forged[16:] = cached_pyc(tmp_path, evil_source).read_bytes()[16:]  # other code, same header
    pyc.write_bytes(bytes(forged))
    os.chown(pyc, 65534, 65534)
    assert fresh_import(name).VALUE == 4  # type: ignore[attr-defined]


def unsafe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> str:
    cache = tmp_path / "shared"
    cache.mkdir()
    if how == "relative":
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    elif how == "writable-by-others":
        cache.chmod(0o777)
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    elif how == "symlinked":
        (cache / "real").mkdir(mode=0o700)
        (cache / "nexo").symlink_to(cache / "real")
        cache.chmod(0o700)
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    elif how == "ancestor-of-another-user":
        cache.chmod(0o700)
        os.chown(cache.parent, 65534, 65534)
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return how


@pytest.mark.parametrize(
    "how", ["relative", "writable-by-others", "symlinked", "ancestor-of-another-user"]
)
def test_a_cache_another_user_could_change_is_not_used(
    vendored: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    if how == "ancestor-of-another-user" and os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    unsafe_cache(tmp_path, monkeypatch, how)
    name, _ = module(vendored, "VALUE = 5\n")
    other, _ = module(vendored, "VALUE = 6\n")
    assert fresh_import(name).VALUE == 5  # type: ignore[attr-defined]
    assert fresh_import(other).VALUE == 6  # type: ignore[attr-defined]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1, warnings  # said once
    assert warnings[0].startswith("bytecode cache not used (")
    assert list(tmp_path.rglob("*.pyc")) == []


def test_shipped_bytecode_is_used_as_python_would(vendored: Path, tmp_path: Path) -> None:
    name, source = module(vendored, "VALUE = 7\n")
    import py_compile

    py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)  # fmt: skip
    assert fresh_import(name).VALUE == 7  # type: ignore[attr-defined]
    assert not (tmp_path / "cache" / "nexo").exists()  # the cache was never needed
