"""JSON Schemas of gateway.yaml and profiles/*.yaml, generated from the models.

The generated files are committed under `schemas/` so editors (yaml-language-server) can offer
completion and checks; `local-mcp-gateway schema --check` fails in CI when they drift from the code.
Output is deterministic: sorted keys, two-space indent, trailing newline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from local_mcp_gateway.config.gateway_models import GatewayConfig
from local_mcp_gateway.config.models import ProfileConfig

__all__ = ["GATEWAY_SCHEMA_FILE", "PROFILE_SCHEMA_FILE", "check_schemas", "gateway_schema", "profile_schema", "rendered_schemas", "write_schemas"]

GATEWAY_SCHEMA_FILE = "gateway.schema.json"
PROFILE_SCHEMA_FILE = "profile.schema.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["title"] = title
    return schema


def gateway_schema() -> dict[str, Any]:
    """The JSON Schema of gateway.yaml."""
    return _schema(GatewayConfig, "local-mcp-gateway gateway.yaml")


def profile_schema() -> dict[str, Any]:
    """The JSON Schema of profiles/<slug>.yaml."""
    return _schema(ProfileConfig, "local-mcp-gateway profile")


def _render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_schemas() -> dict[str, str]:
    """File name -> exact file content, for both schemas."""
    return {GATEWAY_SCHEMA_FILE: _render(gateway_schema()), PROFILE_SCHEMA_FILE: _render(profile_schema())}


def write_schemas(out_dir: Path) -> list[Path]:
    """Write both schema files into `out_dir` (created if missing); returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(out_dir: Path) -> list[Path]:
    """The schema files in `out_dir` that are missing or differ from what the code generates."""
    stale = []
    for name, text in rendered_schemas().items():
        path = out_dir / name
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            stale.append(path)
    return stale
