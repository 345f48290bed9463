"""Build the release asset `nexo plugin install` expects, reproducibly.

    python3 scripts/pack_tarball.py [--out DIR]       dist/<id>-<version>-noarch.tar.gz + .sha256
    python3 scripts/pack_tarball.py --check-reproducible  also pack a second time and compare
    python3 scripts/pack_tarball.py --check-tag vX.Y.Z   fail unless the tag is v + the version

The archive holds, at its root, nexo-plugin.toml (the project's bytes), bin/<id> (0755) and
LICENSE, and under lib/ the plugin package and its vendored runtime dependencies: exactly
the `==` pins of pyproject.toml whose markers hold on the project's minimum Python, as
pure-Python wheels. Entries are sorted, owned by 0:0, dated SOURCE_DATE_EPOCH (default: the
last commit's time) and gzipped without a name or time, so equal inputs give equal bytes.

Standard library only (tomli on Python 3.10); wheels come from `python -m pip download`.
Follows the template.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from email.parser import HeaderParser
from pathlib import Path

from nexo_manifest import ManifestProblem, load, load_valid

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = "lib"
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Limits of the nexo installer.
MAX_ENTRIES = 10_000
MAX_UNPACKED = 250 * 1024 * 1024
MAX_COMPRESSED = 100 * 1024 * 1024
# 1980-01-01: the oldest date every archive format can hold, for packs outside git.
FALLBACK_EPOCH = 315532800
# name[extras] (specifier) ; marker, as in pyproject.toml and wheel METADATA.
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?"
    r"\s*\(?(?P<spec>[^;()]*)\)?\s*(?:;\s*(?P<marker>.+))?$"
)
MARKER_TOKEN = re.compile(
    r"\s*(\(|\)|'[^']*'|\"[^\"]*\"|===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b|and\b|or\b"
    r"|[A-Za-z_][A-Za-z0-9_.]*)"
)
# Marker variables with one value on every machine a noarch plugin runs on.
FIXED_MARKERS = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}


class PackError(Exception):
    """Packing cannot go on; the message says why and how to fix it."""


# -- versions, specifiers and markers (just what dependency pins need) --------------------


def release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if not match:
        raise PackError(f"cannot compare version {version!r}")
    return tuple(int(part) for part in match.group().split("."))


def compare(left: str, op: str, right: str) -> bool:
    if op == "===":
        return left == right
    if op in ("==", "!=") and right.endswith(".*"):
        prefix = release(right[:-2])
        equal = release(left)[: len(prefix)] == prefix
        return equal if op == "==" else not equal
    a, b = release(left), release(right)
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    if op == "~=":
        prefix = release(right)[:-1]
        return a >= b and release(left)[: len(prefix)] == prefix
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def satisfies(version: str, specifier: str) -> bool:
    for clause in filter(None, (part.strip() for part in specifier.split(","))):
        op, wanted = re.match(r"(===|==|!=|<=|>=|~=|<|>)?\s*(.+)", clause).groups()
        if not compare(version, op or "==", wanted):
            return False
    return True


def marker_holds(marker: str, python: str, extras: frozenset[str], owner: str) -> bool:
    """Evaluate a PEP 508 marker for the minimum Python on a noarch (any-platform) install."""
    tokens = MARKER_TOKEN.findall(marker)
    unreadable = PackError(f"{owner}: cannot read the environment marker {marker!r}")
    if re.sub(r"\s+", "", "".join(tokens)) != re.sub(r"\s+", "", marker):
        raise unreadable
    position = 0

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def value() -> tuple[str, str]:
        token = take()
        if token[0] in "'\"":
            return "literal", token[1:-1]
        if token in ("python_version", "python_full_version"):
            return "version", python
        if token == "extra":
            return "extra", ""
        if token in FIXED_MARKERS:
            return "literal", FIXED_MARKERS[token]
        raise PackError(
            f"{owner}: the marker {marker!r} depends on {token}, which differs between the "
            "machines a noarch tarball runs on; vendor only dependencies every platform needs"
        )

    def comparison() -> bool:
        if tokens[position] == "(":
            take()
            result = disjunction()
            take()  # ")"
            return result
        (left_kind, left), op, (right_kind, right) = value(), take(), value()
        op = " ".join(op.split())
        if "extra" in (left_kind, right_kind):
            wanted = right if left_kind == "extra" else left
            return (wanted in extras) == (op == "==")
        if op in ("in", "not in"):
            return (left in right) == (op == "in")
        if "version" in (left_kind, right_kind):
            return compare(left, op, right)
        return {"==": left == right, "!=": left != right}.get(op, False)

    def chain(operand: Callable[[], bool], keyword: str) -> bool:
        """operand (keyword operand)*, combined with `and` or `or`."""
        results = [operand()]
        while position < len(tokens) and tokens[position] == keyword:
            take()
            results.append(operand())
        return all(results) if keyword == "and" else any(results)

    def conjunction() -> bool:
        return chain(comparison, "and")

    def disjunction() -> bool:
        return chain(conjunction, "or")

    try:
        result = disjunction()
    except (IndexError, KeyError):
        raise unreadable from None
    if position != len(tokens):
        raise unreadable
    return result


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- what goes into the archive -----------------------------------------------------------


def runtime_pins(pyproject: dict, python: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{normalized name: (version, extras)} for every dependency that applies on `python`."""
    pins = {}
    for requirement in pyproject.get("project", {}).get("dependencies", []):
        match = REQUIREMENT.match(requirement)
        spec = match and match["spec"].strip()
        if not match or not re.fullmatch(r"==\s*[0-9][0-9A-Za-z.+!]*", spec or ""):
            raise PackError(
                f"pyproject.toml: dependency {requirement!r} is not pinned to one version. "
                "Write it as name==1.2.3: a release vendors exactly the versions you tested."
            )
        owner = f"pyproject.toml dependency {requirement!r}"
        if match["marker"] and not marker_holds(match["marker"], python, frozenset(), owner):
            continue
        extras = frozenset(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
        pins[normalize(match["name"])] = (spec[2:].strip(), extras)
    return pins


def minimum_python(pyproject: dict) -> str:
    requires = pyproject.get("project", {}).get("requires-python", "")
    match = re.fullmatch(r"\s*>=\s*(3\.\d+)(?:\.\d+)?\s*", requires)
    if not match:
        raise PackError(
            f'pyproject.toml: requires-python = {requires!r}; write ">=3.X" so the pack knows '
            "which Python to vendor dependencies for"
        )
    return match.group(1)


def download_wheels(pins: dict[str, tuple[str, frozenset[str]]], python: str, into: Path) -> None:
    if not pins:
        return
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
        found = shutil.which("python3")
        if not found:
            raise PackError("packing needs pip: run this script with a python3 that has pip")
        pip = [found, "-m", "pip"]
    command = [
        *pip, "download", "--quiet", "--disable-pip-version-check", "--no-deps",
        "--only-binary=:all:", "--implementation", "py", "--abi", "none", "--platform", "any",
        "--python-version", python, "--dest", str(into),
        *(f"{name}=={version}" for name, (version, _) in sorted(pins.items())),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise PackError(
            "pip could not download a pure-Python (py3-none-any) wheel for every pinned "
            "dependency. A noarch tarball runs on any OS and CPU, so it can only vendor "
            "pure-Python wheels; a package with only native wheels cannot be packed.\n"
            + run.stderr.strip()
        )


def wheel_files(
    wheel: Path, pins: dict[str, tuple[str, frozenset[str]]], python: str
) -> dict[str, bytes]:
    """The files a wheel installs, checked for native code and unpinned dependencies."""
    label = wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        info_dir = next((n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")), None)
        if info_dir is None:
            raise PackError(f"{label}: no .dist-info/METADATA, not a wheel")
        wheel_meta = HeaderParser().parsestr(archive.read(f"{info_dir}/WHEEL").decode())
        metadata = HeaderParser().parsestr(archive.read(f"{info_dir}/METADATA").decode())
        project = f"{metadata['Name']} {metadata['Version']}"
        native = [name for name in names if name.lower().endswith(NATIVE_SUFFIXES)]
        if native or wheel_meta.get("Root-Is-Purelib", "true").strip().lower() != "true":
            raise PackError(
                f"{project} ships a native extension ({', '.join(native) or 'platlib wheel'}). "
                "A noarch tarball must run on every OS and CPU, so it can only vendor "
                "pure-Python code: pin a version with a pure-Python wheel, or drop the dependency."
            )
        _, extras = pins[normalize(metadata["Name"])]
        for requirement in metadata.get_all("Requires-Dist") or []:
            match = REQUIREMENT.match(requirement)
            if match["marker"] and not marker_holds(match["marker"], python, extras, project):
                continue
            needed = normalize(match["name"])
            if needed not in pins:
                raise PackError(
                    f"{project} needs {requirement!r} on Python {python}, which pyproject.toml "
                    f'does not pin: add "{match["name"]}==<version>" (with the same marker) '
                    "to [project].dependencies"
                )
            if not satisfies(pins[needed][0], match["spec"]):
                raise PackError(
                    f"{project} needs {requirement!r}, but pyproject.toml pins "
                    f"{match['name']}=={pins[needed][0]}"
                )
        files = {}
        for name in names:
            top = name.split("/")[0]
            if top.endswith(".data"):
                raise PackError(f"{project}: wheels with a .data folder ({name}) are not supported")
            if "__pycache__/" in name or name.endswith((".pyc", ".pyo")):
                continue
            # Of the metadata, keep what importlib.metadata reads and the licenses.
            if top == info_dir and not (name.endswith("/METADATA") or "/licenses/" in name):
                continue
            files[name] = archive.read(name)
        return files


def package_files(package: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package.parent).as_posix()
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if path.is_symlink():
            raise PackError(f"{path}: symlinks cannot go into the tarball; use a regular file")
        if path.is_file():
            files[relative] = path.read_bytes()
    return files


def source_date_epoch(root: Path) -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        run = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct"], capture_output=True, text=True
        )
    except OSError:
        return FALLBACK_EPOCH
    return int(run.stdout.strip()) if run.returncode == 0 and run.stdout.strip() else FALLBACK_EPOCH


def collect(root: Path, plugin: dict) -> dict[str, tuple[bytes, int]]:
    """{archive path: (bytes, mode)} for the project at `root`, whose [plugin] is `plugin`."""
    manifest_path = root / "nexo-plugin.toml"
    plugin_id = plugin["id"]
    launcher = f"bin/{plugin_id}"
    if plugin["entrypoint"]["command"] not in (launcher, f"./{launcher}"):
        raise PackError(
            f"nexo-plugin.toml: entrypoint.command is {plugin['entrypoint']['command']!r}; "
            f'the installed tarball runs its launcher, so write command = "./{launcher}"'
        )
    if not (root / launcher).is_file():
        raise PackError(f"{launcher} is missing: the daemon starts the plugin through it")
    package = root / "src" / plugin_id
    if not (package / "__init__.py").is_file():
        raise PackError(
            f"src/{plugin_id}/__init__.py is missing: the package is named after the id"
        )

    pyproject = load(root / "pyproject.toml")
    python = minimum_python(pyproject)
    pins = runtime_pins(pyproject, python)
    entries: dict[str, tuple[bytes, int]] = {
        "nexo-plugin.toml": (manifest_path.read_bytes(), 0o644),
        launcher: ((root / launcher).read_bytes(), 0o755),
    }
    if (root / "LICENSE").is_file():
        entries["LICENSE"] = ((root / "LICENSE").read_bytes(), 0o644)
    sources = [package_files(package)]
    with tempfile.TemporaryDirectory(prefix="nexo-pack-") as downloads:
        download_wheels(pins, python, Path(downloads))
        wheels = sorted(Path(downloads).glob("*.whl"))
        got = {normalize(wheel.name.split("-")[0]) for wheel in wheels}
        if got != set(pins):
            raise PackError(f"pip returned wheels for {sorted(got)}, expected {sorted(pins)}")
        sources += [wheel_files(wheel, pins, python) for wheel in wheels]
    for files in sources:
        for name, data in files.items():
            path = f"{VENDOR_DIR}/{name}"
            if path in entries:
                raise PackError(f"two sources provide {path}: the vendored packages overlap")
            if name.split("/")[-1] == "nexo-plugin.toml":
                raise PackError(f"{path}: a second nexo-plugin.toml would confuse plugin discovery")
            entries[path] = (data, 0o644)
    return entries


def write_tarball(entries: dict[str, tuple[bytes, int]], target: Path, mtime: int) -> None:
    folders = {str(Path(name).parent.as_posix()) for name in entries}
    for folder in list(folders):
        folders |= {p.as_posix() for p in Path(folder).parents}
    folders -= {".", ""}
    members = sorted([(folder, None, 0o755) for folder in folders] + [
        (name, data, mode) for name, (data, mode) in entries.items()
    ])  # fmt: skip
    if len(members) > MAX_ENTRIES:
        raise PackError(f"{len(members)} entries; the nexo installer accepts at most {MAX_ENTRIES}")
    if sum(len(data) for _, data, _ in members if data) > MAX_UNPACKED:
        raise PackError("the unpacked plugin exceeds the installer's 250 MiB limit")
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                mtime, mode, 0, 0, "", ""
            )  # fmt: skip
            try:
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            except ValueError as error:  # a path too long for a plain ustar header
                raise PackError(f"{name}: {error}; shorten the path") from None
    if target.stat().st_size > MAX_COMPRESSED:
        raise PackError("the tarball exceeds the installer's 100 MiB limit")


def pack(root: Path, out: Path) -> Path:
    """Write the tarball and its sidecar; on any error, leave neither (nor an empty `out`)."""
    plugin = load_valid(root / "nexo-plugin.toml")["plugin"]
    name = f"{plugin['id']}-{plugin['version']}-noarch.tar.gz"
    tarball, sidecar, partial = out / name, out / f"{name}.sha256", out / f".{name}.partial"
    created = not out.exists()
    for stale in (tarball, sidecar):
        stale.unlink(missing_ok=True)
    try:
        entries = collect(root, plugin)
        out.mkdir(parents=True, exist_ok=True)
        write_tarball(entries, partial, source_date_epoch(root))
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        sidecar.write_text(digest + "\n", encoding="ascii")
        partial.replace(tarball)
    except BaseException:
        for leftover in (partial, sidecar, tarball):
            leftover.unlink(missing_ok=True)
        if created and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
    print(f"{tarball} ({len(entries)} files, sha256 {digest})")
    return tarball


def check_tag(root: Path, tag: str) -> None:
    version = load_valid(root / "nexo-plugin.toml")["plugin"]["version"]
    if tag != f"v{version}":
        raise PackError(
            f"tag {tag!r} does not match nexo-plugin.toml version {version!r}: tag the release "
            f'v{version}, or set version = "{tag.removeprefix("v")}" in nexo-plugin.toml first'
        )
    print(f"tag {tag} matches nexo-plugin.toml version {version}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "dist", help="output folder")
    parser.add_argument(
        "--check-reproducible", action="store_true", help="pack twice, fail if the bytes differ"
    )
    parser.add_argument("--check-tag", metavar="TAG", help="only check TAG against the version")
    args = parser.parse_args(argv)
    try:
        if args.check_tag is not None:
            check_tag(PROJECT_ROOT, args.check_tag)
            return 0
        tarball = pack(PROJECT_ROOT, args.out)
        if args.check_reproducible:
            with tempfile.TemporaryDirectory(prefix="nexo-repack-") as again:
                if pack(PROJECT_ROOT, Path(again)).read_bytes() != tarball.read_bytes():
                    raise PackError(
                        "packing twice gave different bytes: something in the build depends "
                        "on time, order or environment; the release would not be reproducible"
                    )
            print("packed twice: identical bytes")
    except (PackError, ManifestProblem) as error:
        print(f"pack_tarball: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
