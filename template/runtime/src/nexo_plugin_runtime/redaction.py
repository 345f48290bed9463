"""Secrets never leave the process: not in a log line, an error text or a frame.

Every `Secret` registers its value here when it is made, and so does the password of a URL
setting (`https://user:password@host/`). The runtime's boundaries replace each registered
value, in every form it may take on the way out (as is, JSON-escaped, URL-encoded), with
`********`: the log handler on stderr, sys.stderr itself (print, tracebacks), and every frame
sent to the daemon. So whatever the exception and whoever formats it (httpx's error text
carries a header with a token in it), the value does not get out. Values shorter than
MIN_LENGTH are not registered: masking them would mangle ordinary text.
"""

from __future__ import annotations

import json
import logging

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

MASK = "********"
MIN_LENGTH = 4

_values: set[str] = set()
_forms: list[str] = []  # every form of every value, longest first


def register(value: str) -> None:
    """Mask `value` from now on, wherever the runtime sends text."""
    if len(value) < MIN_LENGTH or value in _values:
        return
    from urllib.parse import quote

    _values.add(value)
    forms = {value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value)}
    _forms.extend(forms - set(_forms))
    _forms.sort(key=len, reverse=True)


def register_url_credentials(text: str) -> None:
    """Register the password of a URL, if `text` is one that has one."""
    scheme, separator, rest = text.partition("://")
    if not separator or not scheme.isascii() or not scheme.isalpha():
        return
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo, at, _ = authority.rpartition("@")
    _, colon, password = userinfo.partition(":")
    if at and colon and password:
        register(password)


def redact(text: str) -> str:
    """`text` with every registered value masked."""
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """One line per record (the daemon reads stderr line by line), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record)).replace("\n", "\\n")


class RedactingStream:
    """A text stream (stderr) that masks secrets in what is written through it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)
