"""Dependencies the way Python does them: one lock, vendoring exactly what it pins with every
file checked against it, and per-target tarballs for native dependencies. With real
packages from the index: httpx (pure, transitive, markers), click (a Windows-only
marker), pydantic 2 (native); and wheels of the tests' own for the hash checks."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from environments import find_python, uv
from git_repos import commit_all, git, plain_template
from nexo_plugin_runtime.testing import PluginHost, broker_event
from releases import install, make_writable, pack
from rendering import render

pytestmark = pytest.mark.slow
TARGETS = [
    "aarch64-apple-darwin",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-unknown-linux-gnu",
]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# For the tests of what is vendored: the bytecode is tested with the native dependency.
VENDOR_ONLY = ("--bytecode", "none")


def names(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as archive:
        return archive.getnames()


def vendored(tarball: Path, folder: str = "lib") -> set[str]:
    """The distributions directly in `folder` of the tarball."""
    prefix = f"{folder}/"
    return {
        name[len(prefix) :].split("-")[0].lower()
        for name in names(tarball)
        if name.startswith(prefix)
        and name.endswith(".dist-info")
        and name.count("/") == folder.count("/") + 1
    }


@pytest.mark.cases("webhook+poller+outbound+tools")
def test_httpx_is_vendored_with_its_dependencies_per_python(tarballs: list[Path]) -> None:
    (tarball,) = tarballs
    assert {"httpx", "httpcore", "anyio", "h11", "idna", "certifi", "nexoai"} <= vendored(tarball)
    # Markers decide per Python: these only below 3.11, so only in lib/python3.10/.
    assert {"exceptiongroup", "tomli"} <= vendored(tarball, "lib/python3.10")
    assert not {"exceptiongroup", "tomli"} & (
        vendored(tarball) | vendored(tarball, "lib/python3.13")
    )


def plugin_with(
    tmp_path: Path, name: str, *requirements: str, handlers: str | None = None, **env: str
) -> Path:
    """An echo plugin that depends on `requirements` (`uv add`), committed. Locked, not
    synced: the pack runs in this repository's environment, which has what it needs."""
    project = render(tmp_path / name, template=plain_template(), plugin_id=name)
    if handlers is not None:
        (project / "src" / name / "handlers.py").write_text(handlers)
    git(project, "init", "-q", "-b", "main")
    python = find_python("3.10") or "python3"
    command = ["add", "--no-sync", *requirements] if requirements else ["lock"]
    added = uv(*command, "--quiet", "--python", python, cwd=project, **env)
    assert added.returncode == 0, added.stderr
    commit_all(project, f"depend on {', '.join(requirements)}")
    return project


def test_a_windows_only_marker_is_left_out(tmp_path: Path) -> None:
    project = plugin_with(tmp_path, "clicky", "click==8.3.1")
    run = pack(project, tmp_path / "dist", *VENDOR_ONLY)
    assert run.returncode == 0, run.stderr
    (tarball,) = (tmp_path / "dist").glob("*.tar.gz")
    assert tarball.name == "clicky-0.1.0-noarch.tar.gz"
    assert "click" in vendored(tarball)
    assert not [name for name in names(tarball) if "colorama" in name]  # Windows only


PYDANTIC_HANDLERS = """
from __future__ import annotations

import sys

from nexo_plugin_runtime import InboundEvent, PluginContext
from pydantic import BaseModel, ValidationError


class Order(BaseModel):
    item: str
    quantity: int


async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    try:
        order = Order.model_validate(event.payload)
    except ValidationError as error:
        result = {"invalid": error.error_count(), "python": sys.version_info[:2]}
    else:
        result = {"order": order.model_dump(), "python": sys.version_info[:2]}
    await plugin.publish(plugin.inbound_topic(topic), result)
"""


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A plugin depending on pydantic 2, and its tarballs by target."""
    work = tmp_path_factory.mktemp("native")
    project = plugin_with(work, "typed", "pydantic>=2,<3", handlers=PYDANTIC_HANDLERS)
    run = pack(project, work / "dist")
    assert run.returncode == 0, run.stderr
    tarballs = {
        t.name.removeprefix("typed-0.1.0-").removesuffix(".tar.gz"): t
        for t in (work / "dist").glob("*.tar.gz")
    }
    return project, tarballs


def test_a_native_dependency_gives_one_tarball_per_target(
    native: tuple[Path, dict[str, Path]],
) -> None:
    _, tarballs = native
    assert sorted(tarballs) == TARGETS
    for target, tarball in tarballs.items():
        files = names(tarball)
        with tarfile.open(tarball) as archive:
            assert archive.extractfile("lib/TARGET").read().decode().strip() == target  # type: ignore[union-attr]
        compiled = [name for name in files if name.endswith(".so")]
        # Every CPython from the minimum to 3.14 has its own compiled pydantic_core.
        for minor in range(10, 15):
            built = [
                name for name in compiled if name.startswith(f"lib/python3.{minor}/pydantic_core/")
            ]
            assert len(built) == 1, (target, minor, compiled)
            suffix = {
                "x86_64-unknown-linux-gnu": "x86_64-linux-gnu.so",
                "aarch64-unknown-linux-gnu": "aarch64-linux-gnu.so",
            }.get(target, "darwin.so")
            assert built[0].endswith(f".cpython-3{minor}-{suffix}"), built
        assert f"{Path(tarball).name}.sha256" in {p.name for p in tarball.parent.iterdir()}


def hostile_environment(tmp: Path) -> dict[str, str]:
    site = tmp / "foreign"
    (site / "pydantic").mkdir(parents=True, exist_ok=True)
    (site / "pydantic" / "__init__.py").write_text("raise ImportError('a foreign pydantic')\n")
    return {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp / "cache")}


def run_installed(folder: Path, python: str, cwd: Path) -> list[object]:
    """What the installed plugin publishes for a good and a bad order, on `python`."""
    env = {**hostile_environment(cwd), "TYPED_PYTHON": python}
    launcher = [str(folder / "bin" / "typed")]
    with PluginHost(launcher, project=folder, cwd=cwd, env=env) as host:
        host.initialize()
        payloads = []
        for payload in ({"item": "tea", "quantity": "2"}, {"item": "tea"}):
            host.notify("broker.event", broker_event("plugin.outbound.typed", payload))
            payloads.append(host.next_notification("broker.publish")["params"]["event"]["payload"])
        host.close_stdin()
        assert host.wait() == 0, host.log()
    return payloads


@pytest.mark.parametrize("version", PYTHONS)
def test_the_linux_tarball_runs_read_only_on_every_python_here(
    native: tuple[Path, dict[str, Path]], tmp_path: Path, version: str
) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here")
    folder = install(native[1]["x86_64-unknown-linux-gnu"], tmp_path / "plugins" / "typed")
    try:
        frames = run_installed(folder, python, tmp_path)
    finally:
        make_writable(folder)
    assert frames == [
        {"order": {"item": "tea", "quantity": 2}, "python": [3, int(version.split(".")[1])]},
        {"invalid": 1, "python": [3, int(version.split(".")[1])]},
    ]


def test_a_python_without_wheels_is_refused_naming_those_it_has(
    native: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    python = find_python("3.12")
    if python is None:
        pytest.skip("no Python 3.12 here")
    folder = tmp_path / "typed"
    with tarfile.open(native[1]["x86_64-unknown-linux-gnu"]) as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    shutil.rmtree(folder / "lib" / "python3.12")  # as a Python newer than the build would find
    run = subprocess.run(
        [str(folder / "bin" / "typed")],
        stdin=subprocess.PIPE,
        capture_output=True,
        env={**os.environ, "TYPED_PYTHON": python},
    )
    assert run.returncode == 1
    assert b"has compiled dependencies for Python 3.10, 3.11, 3.13, 3.14" in run.stderr
    assert b"is Python 3.12" in run.stderr


def test_another_machine_s_build_is_refused(
    native: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    folder = tmp_path / "typed"
    with tarfile.open(native[1]["aarch64-apple-darwin"]) as archive:
        archive.extractall(folder, filter="tar" if hasattr(tarfile, "tar_filter") else None)
    run = subprocess.run(
        [str(folder / "bin" / "typed")], stdin=subprocess.PIPE, capture_output=True
    )
    assert run.returncode == 1
    assert b"this is the aarch64-apple-darwin build of the plugin" in run.stderr


def wheel(folder: Path, name: str, version: str, files: dict[str, str], build: str = "") -> Path:
    """A pure wheel with a correct RECORD."""
    info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = (
            base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        )
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    target = folder / f"{name}-{version}{'-' + build if build else ''}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return target


@contextlib.contextmanager
def package_index(root: Path) -> Iterator[str]:
    """`root` served over HTTP on 127.0.0.1 as a simple index (PEP 503): its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}/simple/"
        server.shutdown()


def publish(root: Path, built: Path) -> None:
    """Put a wheel on the index, with its sha256 in the link as indexes publish it."""
    project = root / "simple" / built.name.split("-")[0]
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy(built, project / built.name)
    digest = hashlib.sha256(built.read_bytes()).hexdigest()
    (project / "index.html").write_text(
        f'<a href="{built.name}#sha256={digest}">{built.name}</a>\n'
    )


def test_a_wheel_that_differs_from_the_lock_is_refused(tmp_path: Path) -> None:
    built = tmp_path / "built"
    built.mkdir()
    index = tmp_path / "index"
    publish(index, wheel(built, "tinydep", "1.0", {"tinydep/__init__.py": "GOOD = True\n"}))
    with package_index(index) as url:
        env = {"UV_INDEX": url, "UV_CACHE_DIR": str(tmp_path / "cache")}
        project = plugin_with(tmp_path, "hashed", "tinydep==1.0", **env)
        assert pack(project, tmp_path / "dist", *VENDOR_ONLY, **env).returncode == 0
        # The same file name, other bytes, and the index's link changed to match: what a
        # compromised index or mirror would serve.
        publish(index, wheel(built, "tinydep", "1.0", {"tinydep/__init__.py": "GOOD = False\n"}))
        shutil.rmtree(tmp_path / "cache")
        run = pack(project, tmp_path / "dist2", *VENDOR_ONLY, **env)
    assert run.returncode == 1
    assert "tinydep" in run.stderr
    assert "differs from the sha256 in uv.lock" in run.stderr
    assert not (tmp_path / "dist2").exists()


def test_compiled_code_in_a_wheel_tagged_pure_is_refused(tmp_path: Path) -> None:
    built = tmp_path / "built"
    built.mkdir()
    index = tmp_path / "index"
    files = {"fastthing/__init__.py": "", "fastthing/_speedups.so": "\x7fELF"}
    publish(index, wheel(built, "fastthing", "1.0", files))
    with package_index(index) as url:
        env = {"UV_INDEX": url, "UV_CACHE_DIR": str(tmp_path / "cache")}
        project = plugin_with(tmp_path, "noarchy", "fastthing==1.0", **env)
        run = pack(project, tmp_path / "dist", *VENDOR_ONLY, **env)
    assert run.returncode == 1
    assert "fastthing 1.0 ships compiled code (fastthing/_speedups.so)" in run.stderr
    assert "a noarch tarball cannot carry it" in run.stderr


def test_a_dependency_without_hashes_in_the_lock_is_refused(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    wheel(links, "tinydep", "1.0", {"tinydep/__init__.py": "GOOD = True\n"})
    env = {"UV_FIND_LINKS": str(links)}
    project = plugin_with(tmp_path, "unhashed", "tinydep==1.0", **env)
    run = pack(project, tmp_path / "dist", **env)
    assert run.returncode == 1
    assert "tinydep 1.0 has no sha256 in uv.lock" in run.stderr


def test_a_higher_build_tag_on_the_index_is_not_vendored(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "nexoai", "0.4.0", {"nexo_plugin_sdk/__init__.py": "FAKE = True\n"}, build="1")
    links = {"UV_FIND_LINKS": str(wheels), "UV_CACHE_DIR": str(tmp_path / "cache")}
    project = plugin_with(tmp_path, "tagged")  # locked from PyPI
    run = pack(project, tmp_path / "dist", *VENDOR_ONLY, **links)
    assert run.returncode == 0, run.stderr
    (tarball,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        sdk = archive.extractfile("lib/nexo_plugin_sdk/__init__.py").read()  # type: ignore[union-attr]
    assert b"FAKE" not in sdk
    assert b"PluginAdapter" in sdk
