"""Durable state (state.py): atomic, synced saves; a corrupt or empty file is set aside
with a warning, never a refused start; no symlink is followed when saving."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from nexo_plugin_runtime.state import open_state


def test_a_saved_document_is_loaded_back_and_the_default_is_a_fresh_copy(tmp_path: Path) -> None:
    state = open_state(tmp_path, "seen", {"ids": []})
    first = state.load()
    first["ids"].append("changed")
    assert state.load() == {"ids": []}
    state.save({"ids": ["a", "b"], "nested": {"ok": True}})
    assert open_state(tmp_path, "seen", None).load() == {"ids": ["a", "b"], "nested": {"ok": True}}
    assert oct((tmp_path / "seen.json").stat().st_mode & 0o777) == "0o600"
    assert [path.name for path in tmp_path.iterdir()] == ["seen.json"]


@pytest.mark.parametrize("content", [b"", b"  \n", b'{"ids": [1,', b"\xff\xfe", b"NaN"])
def test_a_file_that_cannot_be_read_is_set_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (tmp_path / "seen.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert open_state(tmp_path, "seen", {"ids": []}).load() == {"ids": []}
    (kept,) = tmp_path.glob("seen.json.corrupt-*")
    assert kept.read_bytes() == content
    assert "cannot be read" in caplog.text
    assert kept.name in caplog.text


def test_a_failed_save_leaves_the_old_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = open_state(tmp_path, "seen", None)
    state.save({"version": 1})

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        state.save({"version": 2})
    monkeypatch.undo()
    assert state.load() == {"version": 1}


def test_a_planted_symlink_is_not_followed_when_saving(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    state = open_state(tmp_path, "seen", None)
    (tmp_path / f".seen.json.{os.getpid()}.partial").symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        state.save({"x": 1})
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "a\\b"])
def test_a_state_name_must_be_a_plain_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        open_state(tmp_path, name, None)


def test_a_value_that_is_not_json_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    state = open_state(tmp_path, "seen", None)
    with pytest.raises(ValueError, match="Out of range float values"):
        state.save({"x": float("nan")})
    assert list(tmp_path.iterdir()) == []
