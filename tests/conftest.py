"""Fixtures: the answer combinations (tests/projects.py), each rendered once per session;
the full ones set up as their README says, packed, and installed read-only."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from environments import find_python, first_steps
from projects import CASES, Project
from releases import install, make_writable, pack
from rendering import render
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

THIS_TARGET = {
    ("Linux", "x86_64"): "x86_64-unknown-linux-gnu",
    ("Linux", "aarch64"): "aarch64-unknown-linux-gnu",
    ("Darwin", "x86_64"): "x86_64-apple-darwin",
    ("Darwin", "arm64"): "aarch64-apple-darwin",
}.get((platform.system(), platform.machine()), "")

# "newest" in CASES: the newest Python the template offers that this machine has.
NEWEST = ["3.14", "3.13"]
# NEXO_TEMPLATE_CASES=echo,tools narrows a run to some combinations while working.
SELECTED = [name for name in os.environ.get("NEXO_TEMPLATE_CASES", "").split(",") if name]
RENDERED = [name for name in CASES if not SELECTED or name in SELECTED]
FULL = [name for name in RENDERED if CASES[name].full]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: sets up, packs or updates projects, or starts a browser (the full tier)"
    )
    config.addinivalue_line(
        "markers", "capability(name): runs only for the combinations that have this capability"
    )
    config.addinivalue_line("markers", "cases(*names): runs only for these combinations")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`rendered`: every combination; `project` (and what builds on it): the full ones. Their
    test ids carry the combination as "case=<name>", which the scheduler groups by."""
    for fixture, cases in (("project", FULL), ("rendered", RENDERED)):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(
                fixture, cases, indirect=True, ids=[f"case={name}" for name in cases]
            )
            return


# Test files with a module-scoped fixture: their tests share a worker, which makes it once.
SHARING_A_MODULE = {
    f"tests/{path.name}"
    for path in Path(__file__).parent.glob("test_*.py")
    if '@pytest.fixture(scope="module")' in path.read_text(encoding="utf-8")
}


class CaseScheduling(LoadScopeScheduling):
    """xdist's scheduling by scope, the scope of a test being its combination (every test of
    one combination runs on the worker that renders it, once), its file when the file has a
    module-scoped fixture, or else the test alone. xdist's own loadgroup does not work with
    pytest 9.2, whose node ids xdist can no longer suffix."""

    def _split_scope(self, nodeid: str) -> str:
        found = re.search(r"case=([a-z+]+)", nodeid)
        if found:
            return found.group(1)
        path = nodeid.split("::", 1)[0]
        return path if path in SHARING_A_MODULE else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> CaseScheduling:
    return CaseScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `capability("x")` runs only for the combinations with x. A test of a
    set-up project is slow, and so is one of a combination that is only rendered: the quick
    tier renders the six that are also set up."""
    kept, deselected = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        case = params and (params.get("project") or params.get("rendered"))
        capability = item.get_closest_marker("capability")
        cases = item.get_closest_marker("cases")
        if case and (
            (capability and capability.args[0] not in CASES[case].capabilities)
            or (cases and case not in cases.args)
        ):
            deselected.append(item)
            continue
        if case and ("project" in params or not CASES[case].full):
            item.add_marker(pytest.mark.slow)
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


_renders: dict[str, Path] = {}


def rendering_of(case: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The combination rendered, once per worker (its tests all run on one worker)."""
    if case not in _renders:
        answers = CASES[case].answers
        folder = tmp_path_factory.mktemp(case.replace("+", "_"))
        _renders[case] = render(folder / answers["plugin_id"], **answers)
    return _renders[case]


@pytest.fixture(scope="session")
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project.at(request.param, rendering_of(request.param, tmp_path_factory))


@pytest.fixture(scope="session")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    case = CASES[request.param]
    versions = NEWEST if case.python == "newest" else [case.python]
    python = next(filter(None, map(find_python, versions)), None)
    if python is None:
        pytest.skip(f"no Python {' or '.join(versions)} on this machine for {request.param}")
    path = rendering_of(request.param, tmp_path_factory)
    first_steps(path, python)
    return Project.at(request.param, path, python)


@pytest.fixture(scope="session")
def tarballs(project: Project, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp(f"dist-{project.plugin_id}")
    run = pack(project.path, out)
    assert run.returncode == 0, run.stderr
    return sorted(out.glob("*.tar.gz"))


@pytest.fixture(scope="session")
def installed(
    project: Project, tarballs: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The tarball for this machine, installed read-only like the nexo installer does."""
    (tarball,) = [
        t for t in tarballs if t.name.endswith(("-noarch.tar.gz", f"-{THIS_TARGET}.tar.gz"))
    ]
    folder = install(
        tarball, tmp_path_factory.mktemp(f"installed-{project.plugin_id}") / project.plugin_id
    )
    yield folder
    make_writable(folder)
