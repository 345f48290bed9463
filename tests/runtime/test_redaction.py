"""Secrets never leave (redaction.py): every form of a registered value is masked in what
the log formatter and the stderr stream let out."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

import pytest
from nexo_plugin_runtime import redaction
from nexo_plugin_runtime.config import Secret


@pytest.mark.parametrize(
    "value",
    ["plain-secret-1", 'quo"te\\secret', "pa ss/wörd&x", "\u00e9t\u00e9-secret"],
)
def test_every_form_of_a_secret_is_masked(value: str) -> None:
    Secret(value)
    text = f"raw {value} json {json.dumps(value)} url {quote(value, safe='')} path {quote(value)}"
    masked = redaction.redact(text)
    assert value not in masked
    assert json.dumps(value)[1:-1] not in masked
    assert quote(value, safe="") not in masked
    assert masked.count(redaction.MASK) >= 3


def test_short_values_are_not_registered() -> None:
    Secret("ab")
    assert redaction.redact("a table about cabs") == "a table about cabs"


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("https://user:url-pass-1@host:8080/feed?x=1", "url-pass-1"),
        ("http://:only-pass-2@host/", "only-pass-2"),
        ("https://user@host/", None),
        ("not a url:with-colon@x", None),
    ],
)
def test_url_passwords_are_registered(url: str, password: str | None) -> None:
    redaction.register_url_credentials(url)
    if password is not None:
        assert password not in redaction.redact(f"GET {url}")


def test_the_log_formatter_masks_and_keeps_one_line_per_record() -> None:
    Secret("formatter-secret")
    formatter = redaction.RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError("header: Bearer formatter-secret\nnext line")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("again",), None)
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    assert "formatter-secret" not in line
    assert "Bearer ********" in line


def test_the_stderr_stream_masks() -> None:
    Secret("stream-secret")
    target = io.StringIO()
    stream = redaction.RedactingStream(target)
    assert stream.write("token=stream-secret\n") == len("token=stream-secret\n")
    stream.flush()
    assert target.getvalue() == "token=********\n"
