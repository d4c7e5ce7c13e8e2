"""`validate --format json|sarif`: the issues of a configuration for machines.

SARIF 2.1.0 is what code scanning (GitHub's upload-sarif) reads: one run of the tool `local-mcp-gateway`, one
result per issue with its file and region (line and column), errors at level `error`, warnings at `warning`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from local_mcp_gateway import __version__
from local_mcp_gateway.errors import ConfigIssue

__all__ = ["SARIF_SCHEMA", "json_report", "sarif_report"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_RULES = {
    "config-error": "The configuration is invalid: the gateway refuses to load it.",
    "config-warning": "The configuration loads, but something in it probably does not do what was meant.",
    "lock-error": "A profile's lock file cannot be read or was edited by hand.",
}


def _issue_dict(issue: ConfigIssue) -> dict[str, Any]:
    return {"file": str(issue.file), "line": issue.line, "column": issue.column, "path": issue.path, "message": issue.message}


def json_report(errors: Sequence[ConfigIssue], warnings: Sequence[ConfigIssue], profiles: Sequence[str]) -> dict[str, Any]:
    return {
        "valid": not errors,
        "errors": [_issue_dict(i) for i in errors],
        "warnings": [_issue_dict(i) for i in warnings],
        "profiles": list(profiles),
    }


def _rule(issue: ConfigIssue, level: str) -> str:
    if str(issue.file).endswith(".lock.json") and level == "error":
        return "lock-error"
    return f"config-{level}"


def _result(issue: ConfigIssue, level: str) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": issue.line or 1}
    if issue.column:
        region["startColumn"] = issue.column
    text = f"{issue.path}: {issue.message}" if issue.path else issue.message
    uri = re.sub(r"^\./", "", str(issue.file).replace("\\", "/"))
    return {
        "ruleId": _rule(issue, level),
        "level": level,
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}, "region": region}}],
    }


def sarif_report(errors: Sequence[ConfigIssue], warnings: Sequence[ConfigIssue]) -> dict[str, Any]:
    """A SARIF 2.1.0 log; file paths should be relative to the repository root (as code scanning needs)."""
    results = [_result(i, "error") for i in errors] + [_result(i, "warning") for i in warnings]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "local-mcp-gateway",
                        "version": __version__,
                        "rules": [
                            {"id": rule, "shortDescription": {"text": text}, "defaultConfiguration": {"level": "error" if rule.endswith("error") else "warning"}}
                            for rule, text in _RULES.items()
                        ],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "The repository root (the folder validate ran in)."}}},
                "results": results,
            }
        ],
    }
