"""Rendering this template with copier, as a plugin author does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def render(
    dst: Path, *, pretend: bool = False, template: Path = TEMPLATE_ROOT, **data: Any
) -> Path:
    """Render the working tree (committed or not) of this template into dst; with
    `pretend`, only validate the answers (copier raises ValueError for a refused one).
    `template`: another copy of it (one outside git renders faster, recording no commit)."""
    copier.run_copy(
        str(template),
        dst,
        data=data,
        defaults=True,
        vcs_ref="HEAD" if (template / ".git").exists() else None,
        unsafe=False,
        pretend=pretend,
        quiet=True,
    )
    return dst


def copier_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The `copier` command line, as a plugin author runs it."""
    return subprocess.run(
        [str(BIN / "copier"), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def read_toml(path: Path) -> dict[str, Any]:
    return parse_toml(path.read_text(encoding="utf-8"))


def parse_toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def read_answers(project: Path) -> dict[str, Any]:
    """The answers copier recorded in the project."""
    answers: dict[str, Any] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return answers


def runtime_pins() -> dict[str, str]:
    """{package: version} of the exact pins of template/runtime/pyproject.toml: the versions
    generated plugins take (the SDK, and the dev tools of the runtime's `dev` extra)."""
    project = read_toml(TEMPLATE_ROOT / "template" / "runtime" / "pyproject.toml")["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return dict(item.split("==") for item in requirements if "==" in item)
