"""A config folder written from literal YAML text, for configuration tests."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from local_mcp_gateway.config import Snapshot, load_snapshot
from local_mcp_gateway.errors import ConfigError, ConfigIssue

MINIMAL_GATEWAY = "version: 1\n"


class Repo:
    """A config folder: write files from dedented text, load it, collect issues."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "profiles").mkdir(parents=True)
        (root / "secrets").mkdir()
        self.write("gateway.yaml", MINIMAL_GATEWAY)

    @property
    def config(self) -> Path:
        return self.root / "gateway.yaml"

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def load(self, environ: Mapping[str, str] | None = None) -> Snapshot:
        return load_snapshot(self.config, environ=environ or {})

    def issues(self, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
        with pytest.raises(ConfigError) as caught:
            self.load(environ)
        return caught.value.issues

    def only_issue(self, environ: Mapping[str, str] | None = None) -> ConfigIssue:
        issues = self.issues(environ)
        assert len(issues) == 1, "\n".join(map(str, issues))
        return issues[0]


def where(issue: ConfigIssue, root: Path) -> tuple[str, int | None, int | None, str]:
    """(file relative to root, line, column, dotted path) of an issue."""
    return (Path(issue.file).relative_to(root).as_posix(), issue.line, issue.column, issue.path)
