"""Fixtures: the option matrix's projects, rendered and set up once per session and shared
(tests/projects.py), their tarballs, and those installed read-only."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from environments import find_python, first_steps
from projects import MATRIX, Project
from releases import install, make_writable, pack
from rendering import render

THIS_TARGET = {
    ("Linux", "x86_64"): "x86_64-unknown-linux-gnu",
    ("Linux", "aarch64"): "aarch64-unknown-linux-gnu",
    ("Darwin", "x86_64"): "x86_64-apple-darwin",
    ("Darwin", "arm64"): "aarch64-apple-darwin",
}.get((platform.system(), platform.machine()), "")


# "newest" in the matrix: the newest Python the template offers that this machine has.
NEWEST = ["3.14", "3.13"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run every test of one project on the same xdist worker, which renders it once; a test
    marked `shape("poller")` runs only for the projects of that shape."""
    kept, deselected = [], []
    for item in items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("project")
        shape = item.get_closest_marker("shape")
        if case and shape and MATRIX[case].shape != shape.args[0]:
            deselected.append(item)
            continue
        if case:
            item.add_marker(pytest.mark.xdist_group(case))
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


# NEXO_TEMPLATE_CASES=echo,tool narrows a run to some entries of the matrix while working.
CASES = [case for case in os.environ.get("NEXO_TEMPLATE_CASES", "").split(",") if case] or list(
    MATRIX
)


@pytest.fixture(scope="session", params=CASES)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    case = MATRIX[request.param]
    versions = NEWEST if case.python == "newest" else [case.python]
    python = next(filter(None, map(find_python, versions)), None)
    if python is None:
        pytest.skip(f"no Python {' or '.join(versions)} on this machine for {request.param}")
    path = render(
        tmp_path_factory.mktemp(request.param) / case.answers["plugin_id"], **case.answers
    )
    first_steps(path, python)
    return Project.at(request.param, path, python)


@pytest.fixture(scope="session")
def tarballs(project: Project, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp(f"dist-{project.case}")
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
        tarball, tmp_path_factory.mktemp(f"installed-{project.case}") / project.plugin_id
    )
    yield folder
    make_writable(folder)
