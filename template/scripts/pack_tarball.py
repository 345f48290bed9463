"""Build the release tarballs `nexo plugin install` takes, reproducibly, from uv.lock.

    python scripts/pack_tarball.py [--out DIR]          build into dist/ (or DIR)
    python scripts/pack_tarball.py --allow-dirty        pack the commit, edits left out
    python scripts/pack_tarball.py --check-reproducible  also pack a second time and compare
    python scripts/pack_tarball.py --check-tag vX.Y.Z   fail unless the tag is v + the version
    python scripts/pack_tarball.py --bytecode all       fail unless every supported CPython
                                                        is here to compile bytecode with

Run it in the project's environment (`uv run python scripts/pack_tarball.py`, or
.venv/bin/python): it needs uv and packaging, both in the dev dependency group. Follows the
template. What it builds, and why, is told once in the README ("Release"): in short,

- at the root: nexo-plugin.toml, bin/<id> (0755) and LICENSE; under lib/: the plugin's
  package, as the commit (HEAD) holds it: uncommitted edits stop the pack (--allow-dirty
  leaves them out), and so do a symlink, a submodule, a Git LFS pointer, compiled code,
  names that differ only in case, or a name or size the installer refuses; and the runtime
  dependencies exactly as uv.lock pins them, each wheel checked against the lock's sha256,
  for every CPython from the minimum to NEWEST_PYTHON. lib/ holds what all versions share,
  lib/python3.X/ what one needs alone;
- one `noarch` tarball when every locked runtime dependency has a pure-Python wheel, else one
  per installer target (`<id>-<version>-<target>.tar.gz`, with lib/TARGET naming it);
- bytecode for each of those CPythons it finds an interpreter for (`--bytecode`), so that
  the installed plugin compiles nothing, not even on its first start: `__pycache__/` beside
  the sources, unchecked-hash pycs (PEP 552; an installed release never changes), built with
  a fixed hash seed so that they are reproducible;
- beside each: `.sha256` (the installer's checksum) and `.cdx.json` (a CycloneDX SBOM of
  what it vendors);
- entries sorted, owned by 0:0, dated SOURCE_DATE_EPOCH (default: the last commit's time),
  gzipped without a name or a time: equal inputs give equal bytes.

Every problem found is reported in one run, each with what to do about it.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from nexo_manifest import ManifestProblem, load, load_valid

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = "lib"
NEWEST_PYTHON = (3, 14)
NOARCH = "noarch"
# The installer's targets (the daemon's own triple), as PEP 508 marker values; uv takes the
# same triples for --python-platform.
TARGETS = {
    "x86_64-unknown-linux-gnu": ("linux", "Linux", "x86_64"),
    "aarch64-unknown-linux-gnu": ("linux", "Linux", "aarch64"),
    "x86_64-apple-darwin": ("darwin", "Darwin", "x86_64"),
    "aarch64-apple-darwin": ("darwin", "Darwin", "arm64"),
}
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Limits of the nexo installer.
MAX_ENTRIES = 10_000
MAX_ENTRY_SIZE = 100 * 1024 * 1024
MAX_UNPACKED = 250 * 1024 * 1024
MAX_COMPRESSED = 100 * 1024 * 1024
# The largest time a plain ustar header holds (11 octal digits).
MAX_EPOCH = 8**11 - 1
# {package: [(tags, "sha256:<hex>")]} of the wheels uv.lock lists.
LockWheels = dict[str, list[tuple[frozenset[Tag], str]]]
# What a file stored with Git LFS holds in the commit.
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
# 1980-01-01: the oldest date every archive format can hold, for packs outside git.
FALLBACK_EPOCH = 315532800


class PackError(Exception):
    """Packing cannot go on; each problem says what is wrong and how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Locked:
    """One runtime dependency as uv.lock pins it."""

    name: str
    version: str
    requirement: Requirement
    hashes: tuple[str, ...]

    def line(self) -> str:
        """The requirement for uv: this exact version, one of these files, no marker."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


@dataclass
class Dist:
    """One installed distribution: what it puts under lib/, and what it came from."""

    name: str
    version: str
    files: dict[str, bytes]
    tags: frozenset[Tag]
    purelib: bool
    license: str | None = None

    @property
    def native_files(self) -> list[str]:
        return sorted(name for name in self.files if name.lower().endswith(NATIVE_SUFFIXES))


@dataclass
class Build:
    """One tarball: its target and what goes in."""

    target: str
    entries: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    dists: dict[tuple[str, str], set[Tag]] = field(default_factory=dict)


# -- the project's own files -------------------------------------------------------------


def git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True)


RUNTIME_SOURCE = "runtime/src/"
RUNTIME_PACKAGE = "nexo_plugin_runtime"
# Parts of the runtime for the project, not the installed plugin: its tests' host, and
# the dev host.
RUNTIME_DEV_ONLY = tuple(
    f"{RUNTIME_SOURCE}{RUNTIME_PACKAGE}/{part}/" for part in ("testing", "devhost")
)


def archive_name(name: str) -> str:
    """Where a tracked file goes in the tarball: the two packages under lib/."""
    for source in ("src/", RUNTIME_SOURCE):
        if name.startswith(source):
            return f"{VENDOR_DIR}/{name[len(source) :]}"
    return name


def committed_files(
    root: Path, plugin_id: str, problems: list[str], allow_dirty: bool = False
) -> dict[str, tuple[bytes, int]]:
    """{archive path: (bytes, mode)} of what the commit (HEAD) holds of the files the tarball
    carries: the manifest, the launcher, the license, the plugin's package and the runtime's.
    The commit, not the working tree: what is released is what the tag names."""
    launcher = f"bin/{plugin_id}"
    package = f"src/{plugin_id}"
    runtime = f"{RUNTIME_SOURCE}{RUNTIME_PACKAGE}"
    wanted = ["nexo-plugin.toml", launcher, "LICENSE", package, runtime]
    listed = git(root, "ls-tree", "-r", "-z", "HEAD", "--", *wanted)
    if listed.returncode != 0:
        problems.append(
            f"{root} is not a git checkout (or git is missing): the pack takes only the files "
            "git tracks, so that secrets and junk never ship. Run `git init` and commit."
            if git(root, "rev-parse", "--git-dir").returncode != 0
            else "nothing is committed yet: the pack takes the commit (HEAD). Commit first: "
            "`git add -A && git commit`"
        )
        return {}
    uncommitted(root, wanted, problems, allow_dirty)
    entries = []
    for record in filter(None, listed.stdout.split(b"\0")):
        meta, _, raw = record.partition(b"\t")
        mode, kind, blob = meta.decode().split()
        entries.append((raw.decode("utf-8", "surrogateescape"), mode, kind, blob))
    contents = blobs(root, [blob for _, _, kind, blob in entries if kind == "blob"])
    files: dict[str, tuple[bytes, int]] = {}
    by_case: dict[str, list[str]] = {}
    for name, mode, kind, blob in entries:
        if name.startswith(RUNTIME_DEV_ONLY):
            continue
        data = contents.get(blob, b"")
        if not _utf8(name):
            problems.append(f"{name!r}: the installer takes only UTF-8 file names; rename it")
        elif kind == "commit":
            problems.append(
                f"{name} is a git submodule: the pack takes only this repository's own files. "
                "Make its code a dependency (`uv add`), or copy the files in and commit them"
            )
        elif mode == "120000":
            problems.append(
                f"{name} is a symlink; the tarball holds regular files only (a link could "
                "point outside the project): commit the file itself"
            )
        elif data.startswith(LFS_POINTER):
            problems.append(
                f"{name} is stored with Git LFS: the commit holds only a pointer to it, which "
                f"is what would ship. Keep it in git itself (`git lfs untrack {name}`, then "
                "`git add --renormalize`)"
            )
        elif name.lower().endswith(NATIVE_SUFFIXES):
            problems.append(
                f"{name} is compiled code: a tarball runs on any machine of its target, so "
                "native code must come from a dependency's wheels (uv.lock), not from src/"
            )
        else:
            files[archive_name(name)] = (data, 0o755 if name == launcher else 0o644)
            by_case.setdefault(archive_name(name).casefold(), []).append(name)
    problems += [
        f"{' and '.join(names)} differ only in case: they would overwrite each other on a "
        "case-insensitive file system (macOS, Windows); rename one"
        for names in by_case.values()
        if len(names) > 1
    ]
    required = ["nexo-plugin.toml", launcher, f"{package}/__init__.py", f"{runtime}/__init__.py"]
    for name in required:
        if archive_name(name) not in files and not any(name in problem for problem in problems):
            problems.append(f"{name} is missing or not committed: the installed plugin needs it")
    untracked = git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", package)
    for raw in filter(None, untracked.stdout.split(b"\0")):
        left_out = raw.decode(errors="replace")
        print(f"pack_tarball: left out (not tracked by git): {left_out}", file=sys.stderr)
    return files


def own_metadata(name: str, version: str) -> dict[str, tuple[bytes, int]]:
    """The dist-info that installing the distribution `name` would write, as far as
    importlib.metadata reads it: `importlib.metadata.version("<name>")` works installed
    as it does in the checkout."""
    folder = f"{VENDOR_DIR}/{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    return {f"{folder}/METADATA": (metadata.encode(), 0o644)}


def uncommitted(root: Path, wanted: list[str], problems: list[str], allow_dirty: bool) -> None:
    """Refuse edits of packed files that are not committed (they would not ship), unless
    `allow_dirty`: then say which are left out. What decides the pack (the manifest's id and
    version, the locked dependencies) must be committed either way."""
    decisive = ["nexo-plugin.toml", "pyproject.toml", "uv.lock", "runtime/pyproject.toml"]
    status = git(
        root, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--ignore-submodules",
        "--", *wanted, *decisive,
    )  # fmt: skip
    records = iter(status.stdout.split(b"\0"))
    names = []
    for record in records:
        if len(record) > 3:
            names.append(record[3:].decode("utf-8", "surrogateescape"))
            if record[:1] in (b"R", b"C"):  # a rename or copy: its source comes next
                next(records, None)
    if not names:
        return
    listed = ", ".join(names)
    if set(names) & set(decisive):
        problems.append(
            f"uncommitted changes to {listed}: the manifest, the pyproject.toml files and "
            "uv.lock decide what is packed, and the pack takes the commit (HEAD). Commit them "
            "(or `git stash`)"
        )
    elif not allow_dirty:
        problems.append(
            f"uncommitted changes to {listed}: the pack takes the commit (HEAD), so they would "
            "not ship. Commit them (or `git stash`), or pack the commit without them with "
            "--allow-dirty"
        )
    else:
        print(f"pack_tarball: left out (not committed): {listed}", file=sys.stderr)


def blobs(root: Path, names: list[str]) -> dict[str, bytes]:
    """The contents of git objects, by name, read in one `git cat-file --batch`."""
    run = subprocess.run(
        ["git", "-C", str(root), "cat-file", "--batch"],
        input="".join(f"{name}\n" for name in names).encode(),
        capture_output=True,
        check=True,
    )
    found, output, at = {}, run.stdout, 0
    for name in names:
        header_end = output.index(b"\n", at)
        size = int(output[at:header_end].split()[2])
        found[name] = output[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1
    return found


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_handlers(root: Path, plugin_id: str, problems: list[str]) -> None:
    """handlers.py against the manifest, as the plugin checks it at start."""
    run = subprocess.run(
        [sys.executable, str(root / "bin" / plugin_id), "--check"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    if run.returncode != 0:
        problems += [line for line in run.stderr.splitlines() if line.strip()]


# -- dependencies --------------------------------------------------------------------------


def uv_command() -> str:
    """uv from the environment running this script (the dev group), else from PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        return "uv"
    return str(find_uv_bin())


def locked_requirements(root: Path, problems: list[str]) -> list[Locked]:
    """The runtime dependencies uv.lock pins, with their markers and file hashes."""
    if not (root / "uv.lock").is_file():
        problems.append(
            "uv.lock is missing: run `uv lock` (`uv sync` does it too) and commit it; the "
            "release vendors exactly what it pins"
        )
        return []
    if git(root, "ls-files", "--error-unmatch", "uv.lock").returncode != 0:
        problems.append("uv.lock is not committed: commit it, the release must be reproducible")
    uv = uv_command()
    try:
        # This interpreter, rather than one uv would look for (a version manager's shim may
        # stand in the way): the lock does not depend on which one checks it.
        check = subprocess.run(
            [uv, "lock", "--check", "--offline", "--python", sys.executable],
            cwd=root, capture_output=True,
        )  # fmt: skip
    except OSError:
        problems.append("packing needs uv: install the dev dependencies (`uv sync`)")
        return []
    if check.returncode != 0:
        problems.append(
            "uv.lock does not match pyproject.toml: run `uv lock` and commit it "
            f"({check.stderr.decode(errors='replace').strip().splitlines()[-1:]})"
        )
        return []
    export = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-header",
         "--no-annotate", "--format", "requirements-txt"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    if export.returncode != 0:
        problems.append(f"uv export failed: {export.stderr.strip()}")
        return []
    locked = []
    for line in export.stdout.replace("\\\n", " ").splitlines():
        requirement_text, *hashes = line.split(" --hash=")
        if not requirement_text.strip() or requirement_text.lstrip().startswith("#"):
            continue
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as error:
            problems.append(f"uv export gave a line packaging cannot read: {line!r} ({error})")
            continue
        (pin,) = requirement.specifier
        name = canonicalize_name(requirement.name)
        if not hashes:
            problems.append(
                f"{name} {pin.version} has no sha256 in uv.lock (a find-links folder or an index "
                "that publishes none): the pack checks every file it vendors against the lock, "
                "so take it from an index that publishes hashes, such as PyPI"
            )
        locked.append(Locked(name, pin.version, requirement, tuple(h.strip() for h in hashes)))
    return locked


def wheels_in_lock(root: Path) -> LockWheels:
    """{package: [(tags, sha256 hash)]} of every wheel uv.lock lists."""
    lock = load(root / "uv.lock")
    wheels: LockWheels = {}
    for package in lock.get("package", []):
        name = canonicalize_name(package["name"])
        for wheel in package.get("wheels", []):
            location = wheel.get("url") or wheel.get("path") or wheel.get("filename", "")
            filename = location.rsplit("/", 1)[-1]
            tags = parse_wheel_filename(filename)[3]
            wheels.setdefault(name, []).append((tags, wheel.get("hash", "")))
    return wheels


def is_pure(tags: frozenset[Tag]) -> bool:
    return all(tag.abi == "none" and tag.platform == "any" for tag in tags)


def marker_environment(python: tuple[int, int], target: str) -> dict[str, str]:
    """The PEP 508 environment of CPython `python` on `target`."""
    sys_platform, system, machine = TARGETS[target]
    version = f"{python[0]}.{python[1]}"
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{version}.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": f"{version}.0",
        "python_version": version,
        "sys_platform": sys_platform,
    }


def applies(locked: Locked, python: tuple[int, int], targets: list[str]) -> bool:
    marker = locked.requirement.marker
    return marker is None or any(
        marker.evaluate(marker_environment(python, target)) for target in targets
    )


def vendor(
    wanted: list[Locked], python: tuple[int, int], target: str, into: Path
) -> tuple[dict[str, Dist], str | None]:
    """Install `wanted` for CPython `python` on `target` with uv, checking every file's hash
    against uv.lock: (the installed distributions, uv's complaint or None)."""
    into.mkdir(parents=True)
    if not wanted:
        return {}, None
    requirements = into.parent / f"{into.name}.txt"
    requirements.write_text("".join(item.line() + "\n" for item in wanted))
    version = f"{python[0]}.{python[1]}"
    run = subprocess.run(
        [uv_command(), "pip", "install", "--quiet", "--target", str(into), "--python-version",
         version, "--python-platform", target, "--no-deps", "--require-hashes",
         "--only-binary", ":all:", "--no-compile-bytecode", "-r", str(requirements)],
        capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode != 0:
        return {}, run.stderr.strip()
    return installed_dists(into), None


def installed_dists(folder: Path) -> dict[str, Dist]:
    """The distributions installed in `folder`, from their RECORD files."""
    dists: dict[str, Dist] = {}
    for info in sorted(folder.glob("*.dist-info")):
        metadata = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        wheel = HeaderParser().parsestr((info / "WHEEL").read_text(encoding="utf-8"))
        with (info / "RECORD").open(newline="", encoding="utf-8") as record:
            paths = [row[0] for row in csv.reader(record) if row]
        files = {}
        for path in sorted(paths):
            top = path.split("/")[0]
            if path.startswith(("../", "/")) or top == "bin" or "__pycache__" in path:
                continue  # scripts and caches
            if top == info.name and not (path.endswith("/METADATA") or "/licenses/" in path):
                continue  # of the metadata, keep what importlib.metadata reads and licenses
            if (folder / path).is_file():
                files[path] = (folder / path).read_bytes()
        name = canonicalize_name(metadata["Name"])
        tags = frozenset(tag for line in wheel.get_all("Tag") or [] for tag in parse_tag(line))
        purelib = wheel.get("Root-Is-Purelib", "true").strip().lower() == "true"
        license_ = metadata.get("License-Expression")
        dists[name] = Dist(name, metadata["Version"], files, tags, purelib, license_)
    return dists


# -- the tarballs -----------------------------------------------------------------------


def python_versions(pyproject: dict[str, Any]) -> list[tuple[int, int]]:
    """Every CPython minor from requires-python's minimum to NEWEST_PYTHON."""
    requires = pyproject.get("project", {}).get("requires-python", "")
    match = re.fullmatch(r"\s*>=\s*3\.(\d+)(?:\.\d+)?\s*", requires)
    if not match:
        raise PackError([
            f'pyproject.toml: requires-python = {requires!r}; write ">=3.X" so the pack knows '
            "which Pythons to vendor dependencies for"
        ])  # fmt: skip
    return [(3, minor) for minor in range(int(match.group(1)), NEWEST_PYTHON[1] + 1)]


def interpreters(
    pythons: list[tuple[int, int]], policy: str, problems: list[str]
) -> dict[tuple[int, int], str]:
    """{version: path} of the CPythons to compile bytecode with: the one running this script,
    and those `uv python find` knows. The missing ones are a problem with `--bytecode all`,
    a note with `available` (there the plugin compiles them into the user's cache instead)."""
    if policy == "none":
        return {}

    def find(python: tuple[int, int]) -> str | None:
        if sys.implementation.name == "cpython" and sys.version_info[:2] == python:
            return sys.executable
        run = subprocess.run(
            [uv_command(), "python", "find", "--no-project", f"cpython@{python[0]}.{python[1]}"],
            capture_output=True, text=True,
        )  # fmt: skip
        return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else None

    # uv looks for each version at once: a missing one can take it a second (it asks every
    # python on PATH, version managers' shims included).
    with ThreadPoolExecutor(max_workers=len(pythons)) as pool:
        paths = dict(zip(pythons, pool.map(find, pythons), strict=True))
    found = {python: path for python, path in paths.items() if path is not None}
    missing = [f"{python[0]}.{python[1]}" for python, path in paths.items() if path is None]
    if missing and policy == "all":
        problems.append(
            f"no CPython {', '.join(missing)} here to compile bytecode with: install "
            f"{'it' if len(missing) == 1 else 'them'} (`uv python install {' '.join(missing)}`), "
            "or pack with --bytecode available"
        )
    elif missing:
        print(
            f"pack_tarball: no bytecode for CPython {', '.join(missing)} (no interpreter found; "
            f"`uv python install {' '.join(missing)}` adds it): there the installed plugin "
            "compiles its code on the first start, into the user's cache",
            file=sys.stderr,
        )
    return found


# {(CPython version, source path, source bytes): (pyc path, pyc bytes)}, shared by the builds
# of one pack: per-target tarballs carry mostly the same sources, compiled once.
Compiled = dict[tuple[tuple[int, int], str, bytes], tuple[str, bytes]]


def compile_bytecode(
    build: Build, found: dict[tuple[int, int], str], scratch: Path, compiled: Compiled
) -> None:
    """Add the pycs each interpreter in `found` makes of the .py files it would import: lib/
    and the lib/python3.X/ folder the launcher picks for it. The interpreters run at once."""
    sources = {
        name: data
        for name, (data, _) in build.entries.items()
        if name.startswith(f"{VENDOR_DIR}/") and name.endswith(".py")
    }
    per_python = {
        name.split("/")[1] for name in sources if re.match(rf"{VENDOR_DIR}/python3\.\d+/", name)
    }

    def imported_by(python: tuple[int, int]) -> dict[str, bytes]:
        versions = [name for name in per_python if (3, int(name.split(".")[1])) <= python]
        chosen = max(versions, key=lambda name: int(name.split(".")[1]), default=None)
        return {
            name: data
            for name, data in sources.items()
            if name.split("/")[1] not in per_python or name.split("/")[1] == chosen
        }

    def compile_for(python: tuple[int, int], interpreter: str) -> None:
        imported = imported_by(python)
        tree = scratch / f"bytecode-{build.target}-{python[0]}.{python[1]}"
        for name, data in imported.items():
            if (python, name, data) not in compiled:
                (tree / name).parent.mkdir(parents=True, exist_ok=True)
                (tree / name).write_bytes(data)
        if not tree.exists():
            return
        # A file this version cannot compile gets no pyc (-qq): importing it fails as it
        # would. -S: only the standard library is needed, and no site hook (a coverage
        # tracer) runs. No PYTHON* setting may change the output (a cache prefix,
        # optimisation); a fixed hash seed keeps the order of set constants, and so the
        # bytes, the same from run to run.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
        subprocess.run(
            [interpreter, "-S", "-m", "compileall", "-qq", "--invalidation-mode",
             "unchecked-hash", VENDOR_DIR],
            cwd=tree, env={**env, "PYTHONHASHSEED": "0"}, capture_output=True,
        )  # fmt: skip
        for pyc in (tree / VENDOR_DIR).rglob("*.pyc"):
            source_path = (pyc.parent.parent / f"{pyc.name.split('.')[0]}.py").relative_to(tree)
            source = source_path.as_posix()
            compiled[python, source, imported[source]] = (
                pyc.relative_to(tree).as_posix(),
                pyc.read_bytes(),
            )

    with ThreadPoolExecutor(max_workers=max(len(found), 1)) as pool:
        list(pool.map(lambda item: compile_for(*item), found.items()))
    for python in found:
        for name, data in imported_by(python).items():
            if (python, name, data) in compiled:
                pyc_name, pyc_data = compiled[python, name, data]
                build.entries[pyc_name] = (pyc_data, 0o644)


def layout(build: Build, sets: dict[tuple[int, int], dict[str, Dist]]) -> None:
    """lib/ for the distributions every Python shares byte for byte, lib/python3.X/ for the
    rest. A distribution stays whole in one folder: a package split across two folders on
    sys.path would be found in the first and miss its other half."""
    names = set().union(*sets.values())
    for name in sorted(names):
        copies = [dists.get(name) for dists in sets.values()]
        first = copies[0]
        shared = first is not None and all(copy and copy.files == first.files for copy in copies)
        for python, dists in sets.items():
            dist = dists.get(name)
            if dist is None:
                continue
            folder = VENDOR_DIR if shared else f"{VENDOR_DIR}/python{python[0]}.{python[1]}"
            for path, data in dist.files.items():
                build.entries[f"{folder}/{path}"] = (data, 0o644)
            build.dists.setdefault((dist.name, dist.version), set()).update(dist.tags)
            if shared:
                break


def noarch_problems(sets: dict[tuple[int, int], dict[str, Dist]]) -> list[str]:
    problems = set()
    for dists in sets.values():
        for dist in dists.values():
            if dist.native_files or not dist.purelib or not is_pure(dist.tags):
                found = ", ".join(dist.native_files) or "a platform wheel"
                problems.add(
                    f"{dist.name} {dist.version} ships compiled code ({found}) although uv.lock "
                    "lists a pure-Python wheel for it: a noarch tarball cannot carry it; pin "
                    "a version whose wheel is really pure, or drop the dependency"
                )
    return sorted(problems)


def limit_problems(entries: dict[str, tuple[bytes, int]]) -> list[str]:
    problems = []
    compiled = sum(name.endswith(".pyc") for name in entries)
    bytecode = f" ({compiled} of them bytecode: --bytecode none leaves it out)" if compiled else ""
    if len(entries) > MAX_ENTRIES:
        problems.append(
            f"{len(entries)} files{bytecode}; the nexo installer accepts at most {MAX_ENTRIES}"
        )
    if sum(len(data) for data, _ in entries.values()) > MAX_UNPACKED:
        problems.append(f"the unpacked plugin exceeds the installer's 250 MiB limit{bytecode}")
    for name, (data, _) in sorted(entries.items()):
        if len(data) > MAX_ENTRY_SIZE:
            problems.append(f"{name} is over 100 MiB, more than the installer takes for one file")
        try:
            tarfile.TarInfo(name).tobuf(tarfile.USTAR_FORMAT)
        except ValueError:
            problems.append(f"{name}: the path is too long for a tar header; shorten it")
    return problems


def write_tarball(entries: dict[str, tuple[bytes, int]], target: Path, mtime: int) -> None:
    folders = set()
    for name in entries:
        parts = name.split("/")[:-1]
        folders |= {"/".join(parts[: depth + 1]) for depth in range(len(parts))}
    members = sorted([(folder, None, 0o755) for folder in folders] + [
        (name, data, mode) for name, (data, mode) in entries.items()
    ])  # fmt: skip
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                mtime, mode, 0, 0, "", ""
            )  # fmt: skip
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if target.stat().st_size > MAX_COMPRESSED:
        raise PackError([f"{target.name} exceeds the installer's 100 MiB limit"])


def sbom(
    plugin: dict[str, Any], build: Build, wheels: LockWheels, epoch: int, digest: str
) -> dict[str, Any]:
    """A CycloneDX 1.6 document of what the tarball vendors: each package, the sha256 of every
    wheel it came from, and its license when the wheel declares one."""
    components = []
    for (name, version), tags in sorted(build.dists.items()):
        hashes = sorted(
            sha.split(":", 1)[1] for wheel_tags, sha in wheels.get(name, []) if wheel_tags <= tags
        )
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"pkg:pypi/{name}@{version}",
            "name": name,
            "version": version,
            "purl": f"pkg:pypi/{name}@{version}",
            "hashes": [{"alg": "SHA-256", "content": value} for value in hashes],
        }
        components.append(component)
    timestamp = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'sha256:' + digest)}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "component": {
                "type": "application",
                "bom-ref": plugin["id"],
                "name": plugin["id"],
                "version": plugin["version"],
                "hashes": [{"alg": "SHA-256", "content": digest}],
            },
        },
        "components": components,
    }


def source_date_epoch(root: Path, problems: list[str]) -> int:
    text = os.environ.get("SOURCE_DATE_EPOCH")
    if text is not None:
        if re.fullmatch(r"[0-9]+", text.strip()) and int(text) <= MAX_EPOCH:
            return int(text)
        problems.append(
            f"SOURCE_DATE_EPOCH={text!r} is not a time a tarball can hold: give whole seconds "
            "since 1970, such as the last commit's (`git log -1 --format=%ct`), or unset it"
        )
        return FALLBACK_EPOCH
    run = git(root, "log", "-1", "--format=%ct")
    stamp = run.stdout.decode().strip()
    return int(stamp) if run.returncode == 0 and stamp.isdigit() else FALLBACK_EPOCH


def pack(
    root: Path, out: Path, bytecode: str = "available", allow_dirty: bool = False
) -> list[Path]:
    """Write every tarball and its sidecars; on any problem, write none of them."""
    problems: list[str] = []
    try:
        plugin = load_valid(root / "nexo-plugin.toml")["plugin"]
    except ManifestProblem as problem:
        raise PackError([str(problem)]) from None
    project = committed_files(root, plugin["id"], problems, allow_dirty)
    pyproject = load(root / "pyproject.toml")
    project.update(own_metadata(pyproject["project"]["name"], plugin["version"]))
    runtime = load(root / "runtime/pyproject.toml")["project"]
    project.update(own_metadata(runtime["name"], runtime["version"]))
    check_handlers(root, plugin["id"], problems)
    pythons = python_versions(pyproject)
    locked = locked_requirements(root, problems)
    epoch = source_date_epoch(root, problems)
    compilers = interpreters(pythons, bytecode, problems)
    if problems:
        raise PackError(problems)

    wheels = wheels_in_lock(root)
    needed = [item for item in locked if any(applies(item, p, list(TARGETS)) for p in pythons)]
    native = [item for item in needed if not any(is_pure(t) for t, _ in wheels.get(item.name, []))]
    builds = [Build(target) for target in (TARGETS if native else [NOARCH])]
    failures: dict[str, list[str]] = {}
    compiled: Compiled = {}
    with tempfile.TemporaryDirectory(prefix="nexo-pack-") as scratch:
        jobs = [(build.target, python) for build in builds for python in pythons]

        def vendor_for(job: tuple[str, tuple[int, int]]) -> tuple[dict[str, Dist], str | None]:
            target, python = job
            targets = list(TARGETS) if target == NOARCH else [target]
            wanted = [item for item in needed if applies(item, python, targets)]
            folder = Path(scratch, target, f"{python[0]}.{python[1]}")
            # A noarch set holds pure wheels only: any target serves to fetch them.
            return vendor(wanted, python, targets[0], folder)

        # uv installs for every Python and target at once (each a process of its own).
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            vendored = dict(zip(jobs, pool.map(vendor_for, jobs), strict=True))
        for build in builds:
            sets = {}
            for python in pythons:
                sets[python], failure = vendored[build.target, python]
                if failure is not None:
                    where = build.target if build.target != NOARCH else "any target"
                    version = f"{python[0]}.{python[1]}"
                    failures.setdefault(failure, []).append(f"CPython {version} on {where}")
            if build.target == NOARCH:
                problems += noarch_problems(sets)
            else:
                build.entries[f"{VENDOR_DIR}/TARGET"] = (f"{build.target}\n".encode(), 0o644)
            layout(build, sets)
            for name in set(build.entries) & set(project):
                problems.append(f"{name}: a dependency and the plugin's package both have it")
            build.entries.update(project)
            compile_bytecode(build, compilers, Path(scratch), compiled)
            problems += limit_problems(build.entries)
    problems += [
        f"uv cannot install the locked dependencies for {', '.join(where)} (a wheel missing "
        "for it, or a file that differs from the sha256 in uv.lock):\n    "
        + "\n    ".join(message.splitlines())
        for message, where in failures.items()
    ]
    if problems:
        raise PackError(sorted(set(problems), key=problems.index))

    out.mkdir(parents=True, exist_ok=True)

    def write(build: Build) -> tuple[Path, str]:
        name = f"{plugin['id']}-{plugin['version']}-{build.target}.tar.gz"
        tarball, partial = out / name, out / f".{name}.partial"
        try:
            write_tarball(build.entries, partial, epoch)
            digest = hashlib.sha256(partial.read_bytes()).hexdigest()
            Path(f"{tarball}.sha256").write_text(digest + "\n", encoding="ascii")
            document = sbom(plugin, build, wheels, epoch, digest)
            Path(f"{tarball}.cdx.json").write_text(json.dumps(document, indent=2) + "\n")
            partial.replace(tarball)
        finally:
            partial.unlink(missing_ok=True)
        return tarball, digest

    # Compressing runs outside the GIL: the tarballs are written at once.
    with ThreadPoolExecutor(max_workers=len(builds)) as pool:
        written = list(pool.map(write, builds))
    for (tarball, digest), build in zip(written, builds, strict=True):
        print(f"{tarball} ({len(build.entries)} files, sha256 {digest})")
    return [tarball for tarball, _ in written]


def check_tag(root: Path, tag: str) -> None:
    version = load_valid(root / "nexo-plugin.toml")["plugin"]["version"]
    if tag != f"v{version}":
        raise PackError([
            f"tag {tag!r} does not match nexo-plugin.toml version {version!r}: tag the release "
            f'v{version}, or set version = "{tag.removeprefix("v")}" in nexo-plugin.toml first'
        ])  # fmt: skip
    print(f"tag {tag} matches nexo-plugin.toml version {version}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "dist", help="output folder")
    parser.add_argument(
        "--check-reproducible", action="store_true", help="pack twice, fail if the bytes differ"
    )
    parser.add_argument("--check-tag", metavar="TAG", help="only check TAG against the version")
    parser.add_argument(
        "--bytecode",
        choices=["available", "all", "none"],
        default="available",
        help="compile for the supported CPythons found here (default), all of them, or none",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="pack the commit although packed files have uncommitted changes (left out)",
    )
    args = parser.parse_args(argv)
    try:
        if args.check_tag is not None:
            check_tag(PROJECT_ROOT, args.check_tag)
            return 0
        tarballs = pack(PROJECT_ROOT, args.out, args.bytecode, args.allow_dirty)
        if args.check_reproducible:
            with tempfile.TemporaryDirectory(prefix="nexo-repack-") as again:
                again_tarballs = pack(PROJECT_ROOT, Path(again), args.bytecode, args.allow_dirty)
                for first, second in zip(tarballs, again_tarballs, strict=True):
                    if first.read_bytes() != second.read_bytes():
                        raise PackError([
                            f"packing twice gave different bytes for {first.name}: something "
                            "depends on time, order or environment"
                        ])  # fmt: skip
            print("packed twice: identical bytes")
        if os.environ.get("GITHUB_OUTPUT"):  # the release workflow signs each one
            with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as output:
                output.write(f"tarballs={json.dumps([t.name for t in tarballs])}\n")
    except (PackError, ManifestProblem) as error:
        problems = error.problems if isinstance(error, PackError) else [str(error)]
        for problem in problems:
            print(f"pack_tarball: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
