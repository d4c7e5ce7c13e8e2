"""The gateway's error tree.

    GatewayError
    ├── ConfigError       a configuration file is invalid (carries one or more ConfigIssue)
    ├── SecretError       a secret or key is missing, malformed or cannot be decrypted
    ├── UpstreamError     an upstream MCP server cannot be reached or misbehaves
    └── AuthError         an OAuth flow towards an upstream failed

Foreign exceptions are translated where the foreign library ends (`raise ... from exc`).
Messages never contain secret values; they say what is wrong and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AuthError",
    "ConfigError",
    "ConfigIssue",
    "GatewayError",
    "SecretError",
    "UpstreamError",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in one configuration file, with its position (1-based) when known."""

    file: Path | str
    message: str
    line: int | None = None
    column: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        prefix = f"{self.path}: " if self.path else ""
        return f"{where}: {prefix}{self.message}"

    def github(self) -> str:
        """The issue as a GitHub Actions workflow annotation."""
        props = [f"file={self.file}"]
        if self.line is not None:
            props.append(f"line={self.line}")
            if self.column is not None:
                props.append(f"col={self.column}")
        prefix = f"{self.path}: " if self.path else ""
        message = (prefix + self.message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::error {','.join(props)}::{message}"


class ConfigError(GatewayError):
    """The configuration is invalid; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue] | ConfigIssue) -> None:
        self.issues: list[ConfigIssue] = [issues] if isinstance(issues, ConfigIssue) else list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class SecretError(GatewayError):
    """A secret or the age key is missing, malformed or cannot be used."""


class UpstreamError(GatewayError):
    """An upstream MCP server cannot be reached, started, or answered badly."""


class AuthError(GatewayError):
    """An OAuth flow towards an upstream server failed."""
