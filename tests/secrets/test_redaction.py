"""The redaction point: known values, sensitive names, and log records."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_mcp_gateway.redact import MASK, RedactingFilter, Redactor, install_redaction, is_sensitive_name

VALUE = 'p@ss w/ "quotes" & ünïcode'


def test_known_value_in_all_its_forms(redactor: Redactor) -> None:
    redactor.add(VALUE)
    for form in (VALUE, quote(VALUE, safe=""), quote(VALUE), quote_plus(VALUE), json.dumps(VALUE)[1:-1],
                 json.dumps(VALUE, ensure_ascii=False)[1:-1]):
        text = redactor.redact_text(f"before {form} after")
        assert text == f"before {MASK} after"


def test_longest_value_first(redactor: Redactor) -> None:
    redactor.add("abcd")
    redactor.add("abcdefgh")
    assert redactor.redact_text("x abcdefgh y abcd") == f"x {MASK} y {MASK}"


def test_values_added_and_removed_at_run_time(redactor: Redactor) -> None:
    redactor.add("rotating-1")
    redactor.add("rotating-1")  # two holders
    redactor.remove("rotating-1")
    assert redactor.redact_text("rotating-1") == MASK
    redactor.remove("rotating-1")
    assert redactor.redact_text("rotating-1") == "rotating-1"
    assert repr(redactor) == "Redactor(0 values)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", f"Authorization: {MASK}"),
        ("authorization=Basic dXNlcjpwYXNz", f"authorization={MASK}"),
        ('{"Authorization": "Bearer abc def", "x": 1}', f'{{"Authorization": "{MASK}", "x": 1}}'),
        ("Cookie: session=abc; theme=dark", f"Cookie: {MASK}"),
        ("Set-Cookie: sid=xyz; HttpOnly", f"Set-Cookie: {MASK}"),
        ("GET /cb?code=1&access_token=zzz&x=2", f"GET /cb?code=1&access_token={MASK}&x=2"),
        ('"refresh_token": "r-1", "client_secret": "c-2"', f'"refresh_token": "{MASK}", "client_secret": "{MASK}"'),
        ("GITHUB_TOKEN=ghp_1 other", f"GITHUB_TOKEN={MASK} other"),
        ("X-Api-Key: k1", f"X-Api-Key: {MASK}"),
        ("api_key=k2 apikey=k3 password: pw", f"api_key={MASK} apikey={MASK} password: {MASK}"),
        ("sent Bearer abc123 upstream", f"sent Bearer {MASK} upstream"),
        ("key AGE-SECRET-KEY-1QQQQQQQQQQQQ end", f"key {MASK} end"),
        ("https://user:hunter22@example.com/x", f"https://user:{MASK}@example.com/x"),
    ],
)
def test_values_of_sensitive_names(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "secrets/github_token.age is not encrypted to this key",
        "profiles/token.yaml:7:5: servers.github: bad",
        "max_tokens: 100",
        "refreshing the token for linear",
    ],
)
def test_ordinary_messages_stay_readable(redactor: Redactor, text: str) -> None:
    assert redactor.redact_text(text) == text


def test_redact_mapping_is_deep(redactor: Redactor) -> None:
    redactor.add("known-value")
    data = {
        "headers": {"Authorization": "Bearer x", "Accept": "text/plain"},
        "api_keys": ["k1", "k2"],
        "nested": [{"note": "has known-value inside"}, ("known-value", 3)],
        "count": 4,
        "token": None,
    }
    assert redactor.redact_mapping(data) == {
        "headers": {"Authorization": MASK, "Accept": "text/plain"},
        "api_keys": [MASK, MASK],
        "nested": [{"note": f"has {MASK} inside"}, (MASK, 3)],
        "count": 4,
        "token": None,
    }


def test_sensitive_names() -> None:
    for name in ("Authorization", "set-cookie", "client_secret", "X-API-Key", "apikey", "password", "access_token"):
        assert is_sensitive_name(name)
    for name in ("Accept", "content-type", "name"):
        assert not is_sensitive_name(name)


def test_filter_redacts_message_args_traceback_and_extras(redactor: Redactor) -> None:
    redactor.add("leaky-value")
    logger = logging.getLogger("local_mcp_gateway.test_redaction")
    records: list[logging.LogRecord] = []
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s %(detail)s"))
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("failed with leaky-value")
        except RuntimeError:
            logger.exception("calling with %s and %r", "leaky-value", {"k": "leaky-value"},
                             extra={"detail": "extra leaky-value"})
    finally:
        logger.removeHandler(handler)
    [line] = lines
    assert "leaky-value" not in line
    assert "RuntimeError: failed with **********" in line
    assert records[0].args is None


def test_install_redaction_covers_handlers_of_the_root_logger(redactor: Redactor) -> None:
    redactor.add("root-leak-value")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    root = logging.getLogger()
    handler = Keep()
    root.addHandler(handler)
    try:
        install_redaction(redactor=redactor)
        install_redaction(redactor=redactor)  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logging.getLogger("some.library").warning("child logger says %s", "root-leak-value")
    finally:
        root.removeHandler(handler)
        for holder in (root, *root.handlers):
            for existing in [f for f in holder.filters if isinstance(f, RedactingFilter)]:
                holder.removeFilter(existing)
    assert lines == [f"child logger says {MASK}"]


@settings(max_examples=150, deadline=None)
@given(
    value=st.text(alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=4,
                  max_size=30),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_a_registered_value_never_survives(value: str, before: str, after: str) -> None:
    redactor = Redactor([value])
    for text in (before + value + after, before + quote(value, safe="") + after, json.dumps({"v": before + value})):
        assert value not in redactor.redact_text(text)
