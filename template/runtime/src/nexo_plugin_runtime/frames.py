"""JSON-RPC frames exactly as strict as the daemon's reader: serde_json, one object per line.

serde_json refuses what Python's json writes without a word: NaN and the infinities, a lone
UTF-16 surrogate escape (`"\\ud800"`, which `os.fsdecode` makes of a non-UTF-8 byte), and a
number beyond what an f64 holds. A line holding one is lost in the daemon, so `encode`
raises FrameError for each instead, and `decode` reads frames with the same rules. Plain
standard library (json, re): the plugin answers `initialize` with it before asyncio loads.
"""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

JSONRPC_VERSION = "2.0"
# The SDK's own limit on one incoming frame (nexo_plugin_sdk.wire.MAX_FRAME_BYTES).
MAX_FRAME_BYTES = 1 << 20
# An integer of this many digits may be beyond f64 (about 1.8e308): serde_json reads integers
# past u64 as f64 and refuses one that overflows it.
LONGEST_SAFE_INTEGER = 308
# A \uXXXX escape of a UTF-16 surrogate, with the backslashes before it (to tell an escape
# from an escaped backslash followed by "u").
_SURROGATE_ESCAPE = re.compile(r"(\\+)u(d[89ab][0-9a-f]{2}|d[c-f][0-9a-f]{2})")
_LONG_NUMBER = re.compile(rf"-?\d{{{LONGEST_SAFE_INTEGER + 1},}}")


class FrameError(ValueError):
    """A value cannot be sent: the daemon's reader would refuse the line."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        shown = text if len(text) <= 24 else f"{text[:20]}..."
        raise ValueError(f"number {shown} is out of range")
    return value


# Integers are read by json's C scanner itself (a hook per integer would cost every frame);
# one too long for an f64 can only be in a text this long, which is then looked through.
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# The scanner alone, called as JSONDecoder.raw_decode calls it: decode() checks the ends.
# (typeshed leaves the attribute out.)
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]
_SPACE = " \t\n\r"
# Default separators and ASCII output: the bytes the SDK's own json.dumps would write.
_encoder = json.JSONEncoder(allow_nan=False)


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate escape in JSON `text` (as written, "\\ud800"), or None."""
    high: str | None = None
    low_expected_at = -1  # where the escape completing `high` must start
    for match in _SURROGATE_ESCAPE.finditer(text):
        if len(match[1]) % 2 == 0:  # an escaped backslash, then a plain "u"
            continue
        code, is_high = match[2], match[2][1] in "89ab"
        if high is not None:
            if not is_high and match.end(1) - 1 == low_expected_at:
                high = None
                continue
            return f"\\u{high}"
        if not is_high:
            return f"\\u{code}"
        high, low_expected_at = code, match.end()
    return None if high is None else f"\\u{high}"


def _long_number(text: str) -> str | None:
    """The first number in JSON `text` beyond what an f64 holds, or None."""
    if len(text) > LONGEST_SAFE_INTEGER:
        for match in _LONG_NUMBER.finditer(text):
            try:
                _finite_float(match[0])
            except ValueError:
                if _outside_strings(text, match.start()):
                    return match[0]
    return None


def check_text(text: str) -> None:
    """FrameError if serde_json would refuse JSON `text` that Python's json wrote."""
    if "\\ud" in text and (escape := lone_surrogate(text)) is not None:
        raise FrameError(
            f"not JSON the daemon reads: a lone UTF-16 surrogate {escape} (text decoded with "
            "surrogateescape, such as os.fsdecode of bytes that are not UTF-8)"
        )
    if (number := _long_number(text)) is not None:
        raise FrameError(
            f"not JSON the daemon reads: the number {number[:20]}... is beyond what a 64-bit "
            "float holds"
        )


def _outside_strings(text: str, position: int) -> bool:
    """Whether `position` of JSON `text` is outside every string."""
    inside, index = False, 0
    while index < position:
        char = text[index]
        if char == "\\" and inside:
            index += 2
            continue
        if char == '"':
            inside = not inside
        index += 1
    return not inside


def decode(line: bytes) -> Any:
    """One frame's JSON value; ValueError (or RecursionError) when serde_json would refuse it."""
    text = line.decode("utf-8")
    if "\\ud" in text and (escape := lone_surrogate(text)) is not None:
        raise ValueError(f"lone UTF-16 surrogate {escape}")
    if (number := _long_number(text)) is not None:
        raise ValueError(f"number {number[:20]}... is out of range")
    start = len(text) - len(text.lstrip(_SPACE)) if text[:1] in _SPACE else 0
    try:
        value, end = _scan(text, start)
    except StopIteration as error:
        raise json.JSONDecodeError("Expecting value", text, error.value) from None
    if end != len(text) and text[end:].strip(_SPACE):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def encode(value: Any) -> str:
    """`value` as JSON text the daemon reads, or FrameError saying why it cannot be sent."""
    try:
        text = _encoder.encode(value)
    except (ValueError, TypeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise FrameError(f"not strict JSON: {reason}") from None
    check_text(text)
    return text


def initialize_reply(request_id: Any, result_json: str) -> str:
    """The reply to `initialize`, byte for byte what the SDK writes (result already JSON)."""
    return (
        f'{{"jsonrpc": "{JSONRPC_VERSION}", "id": {encode(request_id)}, "result": {result_json}}}'
    )
