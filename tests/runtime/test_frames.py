"""Frames exactly as strict as the daemon's serde_json (frames.py), checked against an
independent strict reader (the test host's strict_json) on generated values."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nexo_plugin_runtime.frames import FrameError, decode, encode, lone_surrogate
from nexo_plugin_runtime.testing import strict_json

# JSON-like values, with what Python's json writes and serde_json refuses: NaN and the
# infinities, lone surrogates (as os.fsdecode makes of bytes that are not UTF-8), integers
# beyond f64.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=600, derandomize=True, deadline=None)
@given(values)
@example("\ud800")
@example("\udc00x")
@example("a\\ud800")
@example("\ud83d\ude00")
@example(10**309)
@example(-(10**308))
@example(float("nan"))
@example({"k": ["\\", "\ud800\ud800\udc00"]})
def test_encode_refuses_exactly_what_the_daemon_would(value: object) -> None:
    written = json.dumps(value)  # what Python's json writes, whatever the daemon thinks
    try:
        read = strict_json(written)
    except ValueError:
        read = REFUSED
    try:
        text = encode(value)
    except FrameError:
        assert read is REFUSED
        return
    assert read is not REFUSED
    assert text == written  # the same bytes the SDK's json.dumps writes
    assert decode(text.encode()) == read


REFUSED = object()


@pytest.mark.parametrize(
    "line",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e999}',
        b'{"a": "\\udc00"}',
        b'{"a": "\\ud800 "}',
        b'{"a": ' + b"1" * 400 + b"}",
        b"\xff",
    ],
)
def test_decode_refuses_what_serde_json_refuses(line: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (json's, UTF-8's or ours: any will do)
        decode(line)


def test_lone_surrogate_tells_escapes_from_escaped_backslashes() -> None:
    assert lone_surrogate(json.dumps("\\ud800")) is None  # a backslash, then "ud800"
    assert lone_surrogate(json.dumps("\\\ud800")) == "\\ud800"
    assert lone_surrogate(json.dumps("\ud800\ud800\udc00")) == "\\ud800"
    assert lone_surrogate(json.dumps("\ud83d\ude00")) is None
