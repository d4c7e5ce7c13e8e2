"""The one redaction point: every log line, error text and traffic record passes through here.

Two kinds of masking, applied together:

* **Known values.** A `Redactor` holds the secret values the gateway has decrypted (`SecretStore` registers each
  with `default_redactor`). Any occurrence is masked, longest value first, also in its URL-encoded and
  JSON-escaped forms, so a token that ended up in a query string or a JSON body is caught too.
* **Sensitive names.** Whatever follows `Authorization:`, `Cookie:`, `token=`, `"password": ...`, `api_key=`,
  `Bearer `, a URL's `user:password@`, and anything shaped like an age identity (`AGE-SECRET-KEY-1...`) is masked
  even when its value was never registered (OAuth tokens learnt at run time, keys typed by a user).

`RedactingFilter` applies both to log records; attach it to every handler (`install_redaction()` does that for the
root logger's handlers). A filter on a logger only sees records logged on that very logger, never on its
children, which is why handlers are the place for it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_MASKED_LENGTH",
    "RedactedText",
    "RedactingFilter",
    "Redactor",
    "default_redactor",
    "install_redaction",
    "redacting_errors",
    "is_sensitive_name",
    "redact_mapping",
    "redact_text",
]

MASK = "**********"
"""What a masked value is replaced with; fixed length, so it tells nothing about the value."""

MIN_MASKED_LENGTH = 4
"""Shorter values are not masked by value: masking every `1` or `ab` in every log line would wreck the logs."""

# Names whose values are secret wherever they appear: HTTP headers, JSON fields, query parameters, env vars.
_SENSITIVE_WORDS = r"authorization|cookie|token|secret|passw(?:or)?d|passphrase|api[-_ ]?key|apikey|private[-_]?key"
_SENSITIVE_NAME = re.compile(rf"(?i)(?:{_SENSITIVE_WORDS})")

_AGE_IDENTITY = re.compile(r"AGE-SECRET-KEY-1[0-9A-Za-z]+")
# `Bearer realm="..."` (an auth-param, as in WWW-Authenticate) is no credential and stays readable.
_AUTH_SCHEME = re.compile(
    r"(?i)\b(Bearer)(\s+)(?![A-Za-z0-9_-]+=\")([A-Za-z0-9._~+/=\-]+)|\b(Basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})"
)
# `Authorization: <anything up to the end of the line or a quote>`: the whole header value goes.
_HEADER_LINE = re.compile(
    r"(?im)\b((?:proxy-)?authorization|set-cookie|cookie)(\"?'?\s*[:=]\s*\"?'?)(?!\*{10})([^\r\n\"']+)"
)
# Patterns start only where the previous character cannot belong to the match (lookbehinds) and use possessive
# quantifiers, so a megabyte of `x-x-x-...` or `a:a:a:...` is scanned in linear time.
# `name=value`, `name: value`, `"name": "value"` where name ends in a sensitive word (GITHUB_TOKEN, X-Api-Key,
# "access_token"); a name running on (`github_token.age:`, `tokens:`) is left alone, so file names stay readable.
_KEY_VALUE = re.compile(
    rf"(?i)((?<![\w.-])[\w-]*(?:{_SENSITIVE_WORDS}))(\"?'?\s*[:=]\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|(?!\*{10})[^\s,;&}\])\"']+)"
)
_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*+://[^/\s:@]++:)([^/\s@]++)(@)")


def is_sensitive_name(name: str) -> bool:
    """True when a header, field or variable called `name` holds a secret (Authorization, api_key, ...)."""
    return bool(_SENSITIVE_NAME.search(name))


def _variants(value: str) -> set[str]:
    """The forms a value takes in text: as is, URL-encoded, and JSON-escaped."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {form for form in forms if form}


def _mask_quoted(value: str) -> str:
    """Mask a value, keeping the quotes around it so JSON stays JSON."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def _mask_leaves(obj: Any) -> Any:
    """`obj` with every non-empty string in it replaced by MASK (the value of a sensitive name)."""
    if isinstance(obj, str):
        return MASK if obj else obj
    if isinstance(obj, Mapping):
        return {key: _mask_leaves(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_mask_leaves(item) for item in obj)
    return obj


class Redactor:
    """Masks known secret values and the values of sensitive names in text and nested data.

    Values can be added and removed at run time (reload decrypts new secrets); lookups are thread-safe.
    `repr` shows how many values are held, never the values.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def __repr__(self) -> str:
        return f"Redactor({len(self._counts)} values)"

    def add(self, value: str) -> bool:
        """Start masking `value`; returns False when it is too short to be masked by value."""
        if len(value) < MIN_MASKED_LENGTH:
            return False
        with self._lock:
            self._counts[value] = self._counts.get(value, 0) + 1
            self._pattern = None
        return True

    def remove(self, value: str) -> None:
        """Stop masking `value` once every holder that added it has removed it."""
        with self._lock:
            count = self._counts.get(value, 0)
            if count <= 1:
                self._counts.pop(value, None)
            else:
                self._counts[value] = count - 1
            self._pattern = None

    def __contains__(self, value: object) -> bool:
        return value in self._counts

    def _value_pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._counts:
                forms: set[str] = set()
                for value in self._counts:
                    forms |= _variants(value)
                ordered = sorted(forms, key=lambda form: (-len(form), form))
                self._pattern = re.compile("|".join(re.escape(form) for form in ordered))
            return self._pattern

    def redact_text(self, text: str) -> str:
        """`text` with every known value and every sensitive-name value replaced by MASK."""
        pattern = self._value_pattern()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        text = _AGE_IDENTITY.sub(MASK, text)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
        text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1) or m.group(4)}{m.group(2) or m.group(5)}{MASK}", text)
        text = _HEADER_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{_mask_quoted(m.group(3))}", text)

    def redact_mapping(self, obj: Any) -> Any:
        """A deep copy of `obj` (dicts, lists, tuples, strings) with secrets masked.

        Strings under a sensitive key (`Authorization`, `api_key`, `client_secret`, ...) are replaced whole, also
        inside lists and dicts there; every other string goes through `redact_text`. Numbers, booleans and None are
        kept as they are.
        """
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, value in obj.items():
                if isinstance(key, str) and is_sensitive_name(key):
                    out[key] = _mask_leaves(value)
                else:
                    out[key] = self.redact_mapping(value)
            return out
        if isinstance(obj, list):
            return [self.redact_mapping(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_mapping(item) for item in obj)
        return obj


default_redactor = Redactor()
"""The process-wide redactor; `SecretStore` registers every value it decrypts here."""


def redact_text(text: str) -> str:
    """`default_redactor.redact_text(text)`."""
    return default_redactor.redact_text(text)


def redact_mapping(obj: Any) -> Any:
    """`default_redactor.redact_mapping(obj)`."""
    return default_redactor.redact_mapping(obj)


class RedactedText:
    """A data descriptor for error texts an operator will see: whatever is assigned is redacted as it is stored.

    `error = RedactedText()` in a class body makes `obj.error = f"... {exc}"` store the redacted text, so the
    exception messages that carry URLs, headers or bodies (`/status`, `tools`, reload errors) never hold a secret,
    however many places assign them. Strings go through `redact_text`, mappings and lists through `redact_mapping`,
    None stays None.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_redacted_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self._slot)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._slot] = None if value is None else default_redactor.redact_mapping(value)


async def redacting_errors(ctx: Any, call_next: Any) -> Any:
    """An MCP server middleware (outermost): error answers to clients pass the redaction point.

    A handler's exception becomes the JSON-RPC error a client reads (its text, for any exception the SDK does not
    know); an upstream transport error carries the upstream's URL, query string included. An error whose text or
    data holds nothing to mask is re-raised untouched; otherwise an `MCPError` with the same code and the masked
    text replaces it (code 0, as the SDK answers, for other exceptions).
    """
    from mcp.shared.exceptions import MCPError

    try:
        return await call_next(ctx)
    except MCPError as exc:
        message = redact_text(exc.error.message)
        data = redact_mapping(exc.error.data)
        if message == exc.error.message and data == exc.error.data:
            raise
        raise MCPError(exc.error.code, message, data) from None
    except Exception as exc:
        text = str(exc)
        masked = redact_text(text)
        if masked == text:
            raise
        logging.getLogger(__name__).warning("a request failed: %s: %s", type(exc).__name__, masked)
        raise MCPError(0, masked) from None


# Attributes every LogRecord has; anything else on a record came from `extra=` and is redacted too.
_STANDARD_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and masks secrets in it, its traceback and extras.

    The message is rendered once (`msg % args`) and the result stored as `msg` with no `args`, so no later
    formatter can put an unredacted argument back. The traceback is formatted here, redacted into `exc_text`,
    and `exc_info` dropped for the same reason. Running it twice on a record is harmless (masks stay masks).
    Never rejects a record.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor if redactor is not None else default_redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact_text
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must not let the raw arguments through
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_RECORD_FIELDS and isinstance(value, (str, Mapping, list, tuple)):
                setattr(record, key, self.redactor.redact_mapping(value))
        return True


def install_redaction(logger: logging.Logger | None = None, redactor: Redactor | None = None) -> None:
    """Attach a `RedactingFilter` to every handler of `logger` (default: root) and to the logger itself.

    Idempotent. Call it after the handlers are configured; a handler added later needs its own filter.
    """
    target = logger if logger is not None else logging.getLogger()
    for holder in (target, *target.handlers):
        if not any(isinstance(existing, RedactingFilter) for existing in holder.filters):
            holder.addFilter(RedactingFilter(redactor))
