"""Fixtures for configuration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cfgrepo import Repo, where

from local_mcp_gateway.errors import ConfigIssue


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "config")


@pytest.fixture
def at(repo: Repo) -> Callable[[ConfigIssue], tuple[str, int | None, int | None, str]]:
    return lambda issue: where(issue, repo.root)
