"""Every version the template hands out has one home: pins/ for the workflows' actions and
the pre-commit hooks, template/runtime/pyproject.toml for Python packages (the runtime that
every plugin carries pins them). The templates take them from there, nothing else pins
anything, and this repository's Dependabot watches both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rendering import TEMPLATE_ROOT, read_toml, render, runtime_pins

PINS = TEMPLATE_ROOT / "pins"
# What a pinned version looks like in a file that is not pins/.
PINNED = re.compile(
    r"@[0-9a-f]{40}"  # an action at a commit
    r"|[A-Za-z0-9_.-]==[0-9]"  # a package at one version
    r"|\brev: v?[0-9]"  # a pre-commit hook at a tag
    r"|cosign-release: v[0-9]"  # a cosign release
)
HANDED_OUT = ["copier.yml", "template", "jinja", "hooks"]
PACKAGE_PINS = TEMPLATE_ROOT / "template" / "runtime" / "pyproject.toml"


def files_handed_out() -> list[Path]:
    found = []
    for root in HANDED_OUT:
        path = TEMPLATE_ROOT / root
        found += [path] if path.is_file() else [p for p in sorted(path.rglob("*")) if p.is_file()]
    return [path for path in found if path != PACKAGE_PINS and "__pycache__" not in path.parts]


def test_nothing_is_pinned_outside_the_homes_of_pins() -> None:
    offenders = [
        f"{path.relative_to(TEMPLATE_ROOT)}:{number}: {line.strip()}"
        for path in files_handed_out()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if PINNED.search(line)
    ]
    assert offenders == []


def test_the_check_would_see_a_pin(tmp_path: Path) -> None:
    # A control: the same pattern finds each kind of pin.
    for line in (
        "      - uses: actions/checkout@" + "a" * 40,
        '    "ruff==0.17.6",',
        "    rev: v6.0.0",
        "          cosign-release: v3.1.2",
    ):
        assert PINNED.search(line), line


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(
        tmp_path_factory.mktemp("pins") / "pinned", plugin_id="pinned", capabilities=["tools"]
    )


def test_generated_files_take_their_versions_from_pins(pinned: Path) -> None:
    rendered = pinned
    packages = runtime_pins()
    runtime = read_toml(rendered / "runtime" / "pyproject.toml")["project"]
    assert runtime == read_toml(PACKAGE_PINS)["project"]  # the runtime arrives as it is
    assert f"nexoai=={packages['nexoai']}" in runtime["dependencies"]
    assert {f"ruff=={packages['ruff']}", f"mypy=={packages['mypy']}"} <= set(
        runtime["optional-dependencies"]["dev"]
    )
    sigstore = next(item for item in runtime["optional-dependencies"]["verify"] if "==" in item)
    assert sigstore in (rendered / "scripts/verify_release.py").read_text()
    hooks = {
        repo["repo"]: repo["rev"]
        for repo in yaml.safe_load((PINS / ".pre-commit-config.yaml").read_text())["repos"]
    }
    config = {
        repo["repo"]: repo["rev"]
        for repo in yaml.safe_load((rendered / ".pre-commit-config.yaml").read_text())["repos"]
        if "rev" in repo
    }
    assert {repo: rev for repo, rev in config.items() if repo in hooks} == hooks
    assert config["https://github.com/astral-sh/ruff-pre-commit"] == f"v{packages['ruff']}"
    actions = (PINS / "action.yml").read_text()
    release = (rendered / ".github/workflows/release.yml").read_text()
    used = set(re.findall(r"uses: (\S+ # v\S+)", release))
    used |= set(
        re.findall(r"uses: (\S+ # v\S+)", (rendered / ".github/workflows/ci.yml").read_text())
    )
    assert used
    assert all(f"- uses: {uses}" in actions for uses in used)
    cosign = yaml.safe_load(actions)["runs"]["steps"]
    release_version = next(step["with"]["cosign-release"] for step in cosign if "with" in step)
    assert f"cosign-release: {release_version}" in release


def test_this_repository_s_dependabot_watches_the_homes_of_pins() -> None:
    config = yaml.safe_load((TEMPLATE_ROOT / ".github/dependabot.yml").read_text())
    watched = {
        (entry["package-ecosystem"], directory)
        for entry in config["updates"]
        for directory in entry.get("directories", [entry.get("directory")])
    }
    assert {
        ("github-actions", "/pins"),
        ("pip", "/template/runtime"),
        ("pre-commit", "/pins"),
        ("uv", "/"),
    } <= watched
    assert all(entry["cooldown"]["default-days"] >= 7 for entry in config["updates"])
