"""JSON-RPC frames as the daemon reads them: strict JSON, one object per line.

This file follows the template. The daemon parses with serde_json, which rejects NaN,
Infinity and numbers out of range, so a line holding them is lost. Frames are read the same
strict way, and written so: a value that cannot be sent raises FrameError instead. Plain
standard library (json, math): main.py answers `initialize` with it before asyncio loads.
"""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

JSONRPC_VERSION = "2.0"
# The SDK's own limit on one incoming frame (nexo_plugin_sdk.wire.MAX_FRAME_BYTES).
MAX_FRAME_BYTES = 1 << 20


class FrameError(ValueError):
    """A value cannot be sent as strict JSON."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# Default separators and ASCII output: the bytes the SDK's own json.dumps would write.
_encoder = json.JSONEncoder(allow_nan=False)


def decode(line: bytes) -> Any:
    """One frame's JSON value; ValueError (or RecursionError) when it is not strict JSON."""
    return _decoder.decode(line.decode("utf-8"))


def encode(value: Any) -> str:
    """`value` as strict JSON text, or FrameError saying why it cannot be sent."""
    try:
        return _encoder.encode(value)
    except (ValueError, TypeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise FrameError(f"not strict JSON: {reason}") from None


def initialize_reply(request_id: Any, result_json: str) -> str:
    """The reply to `initialize`, byte for byte what the SDK writes (result already JSON)."""
    return (
        f'{{"jsonrpc": "{JSONRPC_VERSION}", "id": {encode(request_id)}, "result": {result_json}}}'
    )
