"""Unmodified, or told (integrity.py): a plugin's runtime/ against FILES.sha256."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkouts import copy_runtime
from nexo_plugin_runtime.integrity import hashes_listing, runtime_problems

RUNTIME = Path(__file__).resolve().parents[2] / "template" / "runtime"
WAY_OUT = "runtime/ follows the template, and `copier update` replaces it"


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """A plugin folder whose runtime/ is the template's, listed as it is."""
    copy_runtime(tmp_path / "runtime")
    return tmp_path


def test_the_template_s_listing_is_current() -> None:
    assert (RUNTIME / "FILES.sha256").read_text() == hashes_listing(str(RUNTIME)), (
        "template/runtime/FILES.sha256 is stale: run `python3 dev.py hashes`"
    )


def test_an_unmodified_runtime_passes(plugin: Path) -> None:
    (plugin / "runtime" / "src" / "nexo_plugin_runtime" / "__pycache__").mkdir()
    (plugin / "runtime" / "src" / "nexo_plugin_runtime" / "__pycache__" / "x.pyc").write_bytes(b"")
    assert runtime_problems(str(plugin)) == []


def test_every_difference_is_named_then_the_way_out(plugin: Path) -> None:
    package = plugin / "runtime" / "src" / "nexo_plugin_runtime"
    (package / "session.py").write_text((package / "session.py").read_text() + "# tweak\n")
    (package / "frames.py").unlink()
    (package / "extra.py").write_text("")
    assert runtime_problems(str(plugin)) == [
        "runtime/src/nexo_plugin_runtime/frames.py is missing from the runtime",
        "runtime/src/nexo_plugin_runtime/extra.py is not part of the template's runtime",
        "runtime/src/nexo_plugin_runtime/session.py differs from the runtime of the template "
        "version this plugin follows",
        f"{WAY_OUT}: move the change into your own code under src/, or take the template's "
        "runtime back with `copier update` (or `git checkout -- runtime/`)",
    ]


def test_an_unreadable_listing_is_a_problem_too(plugin: Path) -> None:
    (plugin / "runtime" / "FILES.sha256").unlink()
    (problem,) = runtime_problems(str(plugin))
    assert problem.startswith("runtime/FILES.sha256 cannot be read")


def test_an_installed_plugin_has_no_runtime_folder_to_check(tmp_path: Path) -> None:
    assert runtime_problems(str(tmp_path)) == []
