"""age identities, the `Secret` value type, and `SecretStore`, which decrypts `secrets/NAME.age` on demand.

The key comes from the environment (`MCP_GATEWAY_AGE_KEY` or `MCP_GATEWAY_AGE_KEY_FILE`). Secret files are
standard age files (binary or armored) so the `age` command line tool can make and open them. Every value
decrypted here is registered with `redact.default_redactor`, the one redaction point, before anyone sees it.
A value's final line break (`echo value | age ...`) is not part of the value.
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from pyrage import ssh, x25519

from local_mcp_gateway.config.template import SECRET_NAME_PATTERN
from local_mcp_gateway.config.validate import escapes_folder
from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.redact import MASK, MIN_MASKED_LENGTH, Redactor, default_redactor
from local_mcp_gateway.settings import EnvSettings

__all__ = [
    "AGE_ARMOR_HEADER",
    "KEY_ENV",
    "KEY_FILE_ENV",
    "SECRET_SUFFIX",
    "Identity",
    "Secret",
    "SecretStore",
    "check_secret_name",
    "encrypt_to",
    "is_armored",
    "load_identity",
    "parse_recipient",
    "strip_final_newline",
]

logger = logging.getLogger("local_mcp_gateway.secrets")

KEY_ENV = "MCP_GATEWAY_AGE_KEY"
KEY_FILE_ENV = "MCP_GATEWAY_AGE_KEY_FILE"
SECRET_SUFFIX = ".age"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
AGE_ARMOR_HEADER = b"-----BEGIN AGE ENCRYPTED FILE-----"
KEYGEN_HINT = "make one with `local-mcp-gateway keygen`"
_GROUP_OTHER_BITS = 0o077


# --------------------------------------------------------------------------------------------- values


class Secret:
    """A secret string: `repr`, `str`, `format` and pydantic serialization show `**********`, never the value.

    `reveal()` returns the value; call it only where the value is handed on (an HTTP header, a child's
    environment). Equality with another Secret compares in constant time; the hash is the value's.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret needs a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled; pass the name and decrypt it where it is needed")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, Secret) else Secret(value),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _secret: MASK),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "writeOnly": True}


class Identity:
    """An age X25519 identity (private key). `repr`/`str` hide it; `recipient` is its public `age1...` key."""

    __slots__ = ("_inner", "recipient")

    def __init__(self, inner: x25519.Identity) -> None:
        self._inner = inner
        self.recipient: str = str(inner.to_public())

    @classmethod
    def generate(cls) -> Identity:
        """A new random identity."""
        return cls(x25519.Identity.generate())

    @classmethod
    def parse(cls, text: str, source: str) -> Identity:
        """Parse `AGE-SECRET-KEY-1...`; `source` (a variable or file name) is named in the error, the text never."""
        text = text.strip()
        if not text.upper().startswith(IDENTITY_PREFIX):
            raise SecretError(f"{source} does not hold an age identity (a line starting with {IDENTITY_PREFIX}); "
                              f"{KEYGEN_HINT}")
        try:
            return cls(x25519.Identity.from_str(text.upper()))
        except pyrage.IdentityError:
            raise SecretError(f"{source} holds a malformed age identity (bad {IDENTITY_PREFIX}... encoding); "
                              f"copy it again or {KEYGEN_HINT}") from None

    def reveal(self) -> str:
        """The identity as the age tool writes it, `AGE-SECRET-KEY-1...`."""
        return str(self._inner)

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt an age file (binary or armored); raises `pyrage.DecryptError`."""
        return pyrage.decrypt(data, [self._inner])

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient!r})"

    __str__ = __repr__


# --------------------------------------------------------------------------------------------- keys


def _key_file_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretError(f"{KEY_FILE_ENV} names {path}, which does not exist; {KEYGEN_HINT} --out {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{KEY_FILE_ENV}: cannot read {path} ({type(exc).__name__}); check the path and its "
                          "permissions") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _warn_if_shared(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name == "posix" and mode & _GROUP_OTHER_BITS:
        logger.warning(
            "%s %s is readable by group or others (mode %04o); restrict it with `chmod 600 %s`",
            KEY_FILE_ENV, path, stat.S_IMODE(mode), path,
        )


def load_identity(settings: EnvSettings) -> Identity | None:
    """The gateway's age identity from `MCP_GATEWAY_AGE_KEY` or `MCP_GATEWAY_AGE_KEY_FILE`; None if neither is set.

    The variable wins over the file when both are set. The file may hold `#` comment lines, as the age tool
    writes them, and exactly one identity. A file readable by group or others is used, with a warning.
    """
    if settings.age_key is not None:
        if settings.age_key_file is not None:
            logger.warning("both %s and %s are set; using %s", KEY_ENV, KEY_FILE_ENV, KEY_ENV)
        return Identity.parse(settings.age_key.get_secret_value(), KEY_ENV)
    if settings.age_key_file is None:
        return None
    path = settings.age_key_file
    lines = _key_file_lines(path)
    source = f"{KEY_FILE_ENV} ({path})"
    if not lines:
        raise SecretError(f"{source} holds no age identity; {KEYGEN_HINT} --out {path}")
    if len(lines) > 1:
        raise SecretError(f"{source} holds {len(lines)} non-comment lines; keep exactly one {IDENTITY_PREFIX}... line")
    identity = Identity.parse(lines[0], source)
    _warn_if_shared(path)
    return identity


def parse_recipient(text: str) -> x25519.Recipient | ssh.Recipient:
    """An age recipient from `age1...` or an SSH public key (`ssh-ed25519 ...`, `ssh-rsa ...`)."""
    text = text.strip()
    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith("ssh-"):
            return ssh.Recipient.from_str(text)
    except pyrage.RecipientError:
        pass
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise SecretError(f"{shown!r} is not an age recipient: expected `age1...` (from `local-mcp-gateway keygen`) "
                      "or an SSH public key (`ssh-ed25519 ...`)")


def encrypt_to(recipients: list[str], data: bytes, armored: bool = False) -> bytes:
    """Encrypt `data` to every recipient string (validated first); the result is a standard age file."""
    if not recipients:
        raise SecretError("no recipients to encrypt to; add `secrets.recipients` to gateway.yaml")
    parsed = [parse_recipient(recipient) for recipient in dict.fromkeys(recipients)]
    try:
        return pyrage.encrypt(data, parsed, armored=armored)
    except pyrage.EncryptError as exc:
        raise SecretError(f"age encryption failed ({exc}); check `secrets.recipients`") from None


def is_armored(data: bytes) -> bool:
    """True for an ASCII-armored age file (`-----BEGIN AGE ENCRYPTED FILE-----`)."""
    return data.lstrip().startswith(AGE_ARMOR_HEADER)


def strip_final_newline(text: str) -> str:
    """`text` without one final `\\n` or `\\r\\n`: a line break typed or echoed after a value is not part of it."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def check_secret_name(name: str) -> str:
    """`name` if it can be a secret's name (the stem of `secrets/NAME.age`), else SecretError."""
    if not SECRET_NAME_PATTERN.match(name) or ".." in name:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise SecretError(f"{shown!r} is not a valid secret name: use letters, digits, '_', '.' and '-', at most "
                          "128, not starting with '.', with no '/' and no '..'")
    return name


# --------------------------------------------------------------------------------------------- the store


@dataclass(frozen=True, slots=True)
class _Cached:
    secret: Secret
    signature: tuple[int, int, int]  # (inode, size, mtime_ns): a rewritten file is decrypted again


class SecretStore:
    """Decrypts `secrets_dir/NAME.age` on first use and caches it until the file changes.

    Only referenced secrets are ever decrypted (`load(names)`); every value is registered with the redactor.
    `reveal_lookup` is the `Callable[[str], str]` that `config.resolve` renders templates with.
    """

    def __init__(self, secrets_dir: Path, identity: Identity | None, redactor: Redactor | None = None) -> None:
        self.secrets_dir = Path(secrets_dir)
        self._identity = identity
        self._redactor = redactor if redactor is not None else default_redactor
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretStore({str(self.secrets_dir)!r}, {len(self._cache)} decrypted)"

    def path_of(self, name: str) -> Path:
        """The file that holds secret `name`."""
        return self.secrets_dir / f"{check_secret_name(name)}{SECRET_SUFFIX}"

    def get(self, name: str) -> Secret:
        """Secret `name`, decrypted now or taken from the cache; SecretError names the file on any failure."""
        path = self.path_of(name)
        if path.is_symlink() and escapes_folder(path, self.secrets_dir):
            raise SecretError(f"{path} is a link to a file outside {self.secrets_dir}; secrets are read only from that "
                              f"folder: replace the link with the file (`local-mcp-gateway secret set {name}`)")
        try:
            info = path.stat()
        except FileNotFoundError:
            raise SecretError(f"{path} does not exist; create it with `local-mcp-gateway secret set {name}`") from None
        except OSError as exc:
            raise SecretError(f"cannot read {path} ({type(exc).__name__}); check its permissions") from None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached.signature == signature:
                return cached.secret
        secret = self._decrypt(name, path)
        with self._lock:
            old = self._cache.get(name)
            self._cache[name] = _Cached(secret, signature)
        if old is None or old.secret != secret:
            self._register(name, secret)
            if old is not None:
                self._redactor.remove(old.secret.reveal())
        return secret

    def _decrypt(self, name: str, path: Path) -> Secret:
        if self._identity is None:
            raise SecretError(f"cannot decrypt {path}: no age key; set {KEY_ENV} or {KEY_FILE_ENV}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SecretError(f"cannot read {path} ({type(exc).__name__}); check its permissions") from None
        if not data.strip():
            raise SecretError(f"{path} is empty; write it again with `local-mcp-gateway secret set {name}`")
        try:
            plain = self._identity.decrypt(data)
        except pyrage.DecryptError as exc:
            if "no matching keys" in str(exc).lower():
                raise SecretError(f"{path} is not encrypted to this key; re-encrypt it with "
                                  f"`local-mcp-gateway secret set {name}` or `secret rotate`") from None
            raise SecretError(f"{path} is not a readable age file (truncated or corrupted: {exc}); "
                              f"write it again with `local-mcp-gateway secret set {name}`") from None
        try:
            text = plain.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"{path} does not decrypt to UTF-8 text; secrets are text values") from None
        return Secret(strip_final_newline(text))

    def _register(self, name: str, secret: Secret) -> None:
        if not self._redactor.add(secret.reveal()) and secret.reveal():
            logger.warning("secret %r is shorter than %d characters, too short to be masked in logs; use a longer "
                           "value", name, MIN_MASKED_LENGTH)

    def load(self, names: Iterable[str]) -> dict[str, Secret]:
        """Decrypt exactly `names`; one SecretError lists every file that failed."""
        found: dict[str, Secret] = {}
        problems: list[str] = []
        for name in sorted(set(names)):
            try:
                found[name] = self.get(name)
            except SecretError as exc:
                problems.append(str(exc))
        if problems:
            raise SecretError("\n".join(problems))
        return found

    def values(self) -> list[Secret]:
        """Every secret decrypted so far (for the redaction point)."""
        with self._lock:
            return [cached.secret for cached in self._cache.values()]

    def names(self) -> list[str]:
        """Names of the secrets decrypted so far."""
        with self._lock:
            return sorted(self._cache)

    def reveal_lookup(self, name: str) -> str:
        """The value of secret `name`: the `secret=` callable for `Template.render` and `config.resolve`."""
        return self.get(name).reveal()

    lookup = reveal_lookup

    def forget(self) -> None:
        """Drop every cached value and stop masking the ones this store registered."""
        with self._lock:
            dropped = list(self._cache.values())
            self._cache.clear()
        for cached in dropped:
            self._redactor.remove(cached.secret.reveal())
