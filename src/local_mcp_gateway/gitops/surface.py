"""What a profile's clients see, as plain JSON definitions: the unit that is locked, hashed and compared.

A tool is `{name, description, inputSchema, outputSchema, annotations}`, a prompt `{name, description, arguments}`,
a resource template `{uriTemplate, name, description, mimeType}`; names are the client-visible ones (prefix and
overrides applied). Absent fields are `null`, so every definition of a kind has the same members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from local_mcp_gateway.gitops.canonical import canonical_sha256

__all__ = ["KINDS", "TOOL_FIELDS", "Item", "Surface", "surface_of_catalog", "definition_sha256", "prompt_definition", "template_definition", "tool_definition"]

KINDS = ("tools", "prompts", "resource_templates")
"""The kinds of item a lock pins, in the order they are shown."""

TOOL_FIELDS = ("description", "inputSchema", "outputSchema", "annotations")
"""The members of a tool definition besides its name; `plan` names which of them changed."""


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def tool_definition(tool: Any) -> dict[str, Any]:
    raw = _dump(tool) if not isinstance(tool, dict) else tool
    return {
        "name": raw.get("name"),
        "description": raw.get("description"),
        "inputSchema": raw.get("inputSchema"),
        "outputSchema": raw.get("outputSchema"),
        "annotations": raw.get("annotations"),
    }


def prompt_definition(prompt: Any) -> dict[str, Any]:
    raw = _dump(prompt) if not isinstance(prompt, dict) else prompt
    return {"name": raw.get("name"), "description": raw.get("description"), "arguments": raw.get("arguments")}


def template_definition(template: Any) -> dict[str, Any]:
    raw = _dump(template) if not isinstance(template, dict) else template
    return {
        "uriTemplate": raw.get("uriTemplate"),
        "name": raw.get("name"),
        "description": raw.get("description"),
        "mimeType": raw.get("mimeType"),
    }


def definition_sha256(definition: dict[str, Any]) -> str:
    """SHA-256 of the definition's RFC 8785 canonical JSON."""
    return canonical_sha256(definition)


@dataclass
class Item:
    """One locked or listed item: which server offers it and its definition."""

    server: str
    definition: dict[str, Any]

    @property
    def sha256(self) -> str:
        return definition_sha256(self.definition)


@dataclass
class Surface:
    """A profile's tools, prompts and resource templates (by client name / URI template), and its servers."""

    tools: dict[str, Item] = field(default_factory=dict)
    prompts: dict[str, Item] = field(default_factory=dict)
    resource_templates: dict[str, Item] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per server key: `{name, version}` the server announced (empty when it did not start)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Per server key: why it could not be listed."""

    def kind(self, kind: str) -> dict[str, Item]:
        return getattr(self, kind)


def surface_of_catalog(catalog: Any, servers: dict[str, dict[str, Any]] | None = None) -> Surface:
    """The surface of an aggregated `catalog.Catalog`."""
    surface = Surface(servers=dict(servers or {}))
    for tool in catalog.tools:
        surface.tools[tool.name] = Item(catalog.tool_routes[tool.name].server, tool_definition(tool))
    for prompt in catalog.prompts:
        surface.prompts[prompt.name] = Item(catalog.prompt_routes[prompt.name].server, prompt_definition(prompt))
    for template in catalog.templates:
        server = catalog.server_for_template(template.uri_template) or ""
        surface.resource_templates[template.uri_template] = Item(server, template_definition(template))
    return surface
