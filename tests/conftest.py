"""Session-wide renders of the option matrix, each with its own dev venv, shared by all tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from render import MATRIX, find_python, install_dev_venv, read_answers, read_toml, render


@dataclass(frozen=True)
class Project:
    case: str
    path: Path
    answers: dict[str, Any]

    @property
    def plugin_id(self) -> str:
        return self.answers["plugin_id"]

    @property
    def package(self) -> Path:
        """The package folder: the id is also the package name."""
        return self.path / "src" / self.plugin_id

    @property
    def launcher(self) -> Path:
        return self.path / "bin" / self.plugin_id

    @property
    def manifest(self) -> dict[str, Any]:
        return read_toml(self.path / "nexo-plugin.toml")

    def copy_without_venv(self, dst: Path) -> Path:
        """A copy of the project as it is before any dependency is installed."""
        shutil.copytree(self.path, dst, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        return dst


@pytest.fixture(scope="session", params=list(MATRIX))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    case = request.param
    data = MATRIX[case]
    python = find_python(data.get("python_min", "3.10"))
    if python is None:
        pytest.skip(f"no Python {data.get('python_min', '3.10')} on this machine for case {case}")
    path = render(tmp_path_factory.mktemp(case) / data["plugin_id"], **data)
    install_dev_venv(path, python)
    answers = read_answers(path)
    return Project(case=case, path=path, answers=answers)
