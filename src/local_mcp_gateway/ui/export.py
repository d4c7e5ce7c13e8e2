"""A profile's tools, prompts and resources as its clients see them, in a form to paste into a prompt or feed
to another tool: `markdown`, `xml`, `toon` or `json` (pure: catalog in, text out).

The document is built once (`profile_document`) from the profile's `Catalog`, the same one its MCP clients are
answered from, so names, descriptions and input schemas are exactly what a client gets, each with the server
it comes from. The four renderings hold the same facts.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from local_mcp_gateway.ui.toon import encode as toon_encode

__all__ = ["FORMATS", "MEDIA_TYPES", "SUFFIXES", "profile_document", "render"]

FORMATS = ("markdown", "xml", "toon", "json")
MEDIA_TYPES = {
    "markdown": "text/markdown; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "toon": "text/plain; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
SUFFIXES = {"markdown": "md", "xml": "xml", "toon": "toon", "json": "json"}

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def profile_document(slug: str, description: str | None, catalog: Any) -> dict[str, Any]:
    """The export as JSON values: `profile`, `description`, `tools`, `prompts`, `resources`, `resourceTemplates`."""
    tools = []
    for tool in catalog.tools:
        route = catalog.tool_routes.get(tool.name)
        entry: dict[str, Any] = {"name": tool.name, "server": route.server if route else None}
        if tool.title:
            entry["title"] = tool.title
        entry["description"] = tool.description or ""
        entry["inputSchema"] = _plain(tool.input_schema)
        tools.append(entry)
    prompts = []
    for prompt in catalog.prompts:
        route = catalog.prompt_routes.get(prompt.name)
        prompts.append(
            {
                "name": prompt.name,
                "server": route.server if route else None,
                "description": prompt.description or "",
                "arguments": [
                    {"name": a.name, "description": a.description or "", "required": bool(a.required)}
                    for a in prompt.arguments or ()
                ],
            }
        )
    resources = [
        {
            "uri": str(resource.uri),
            "name": resource.name,
            "server": catalog.resource_routes.get(str(resource.uri)),
            "description": resource.description or "",
            "mimeType": resource.mime_type or "",
        }
        for resource in catalog.resources
    ]
    template_servers = {text: server for _, text, server in catalog.template_routes}
    templates = [
        {
            "uriTemplate": template.uri_template,
            "name": template.name,
            "server": template_servers.get(template.uri_template),
            "description": template.description or "",
            "mimeType": template.mime_type or "",
        }
        for template in catalog.templates
    ]
    return {
        "profile": slug,
        "description": description or "",
        "tools": tools,
        "prompts": prompts,
        "resources": resources,
        "resourceTemplates": templates,
    }


def render(document: Mapping[str, Any], fmt: str) -> str:
    """`document` (from `profile_document`) as text in `fmt`, one of `FORMATS`."""
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "toon":
        return toon_encode(document)
    if fmt == "xml":
        return _xml(document)
    if fmt == "markdown":
        return _markdown(document)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def _plain(value: Any) -> Any:
    """A schema as plain JSON values (pydantic may hand back mappings of its own)."""
    return json.loads(json.dumps(value, default=str)) if value is not None else {}


# -- markdown --------------------------------------------------------------------------------------------------


def _code(text: str) -> str:
    """Inline code that survives backticks inside `text`."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _block(text: str, language: str = "") -> list[str]:
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`{3,}", text)), default=0) + 1)
    return [f"{fence}{language}", text.rstrip("\n"), fence]


def _markdown(doc: Mapping[str, Any]) -> str:
    out = [f"# MCP profile {_code(doc['profile'])}", ""]
    if doc["description"]:
        out += [doc["description"], ""]
    out += [f"## Tools ({len(doc['tools'])})", ""]
    for tool in doc["tools"]:
        out += [f"### {_code(tool['name'])}", "", f"Server: {_code(str(tool['server']))}", ""]
        if tool.get("title"):
            out += [f"Title: {tool['title']}", ""]
        if tool["description"]:
            out += [tool["description"].strip(), ""]
        params = _parameters(tool["inputSchema"])
        if params:
            out += ["Parameters:", ""]
            for name, kind, required, text in params:
                line = f"- {_code(name)} ({kind}{', required' if required else ''})"
                out.append(line + (f": {' '.join(text.split())}" if text else ""))
            out.append("")
        out += ["Input schema:", "", *_block(json.dumps(tool["inputSchema"], indent=2, ensure_ascii=False), "json"), ""]
    out += [f"## Prompts ({len(doc['prompts'])})", ""]
    for prompt in doc["prompts"]:
        out += [f"### {_code(prompt['name'])}", "", f"Server: {_code(str(prompt['server']))}", ""]
        if prompt["description"]:
            out += [prompt["description"].strip(), ""]
        for arg in prompt["arguments"]:
            line = f"- {_code(arg['name'])}{' (required)' if arg['required'] else ''}"
            out.append(line + (f": {' '.join(arg['description'].split())}" if arg["description"] else ""))
        if prompt["arguments"]:
            out.append("")
    out += [f"## Resources ({len(doc['resources'])})", ""]
    for resource in doc["resources"]:
        line = f"- {_code(resource['uri'])} {resource['name']} (server {_code(str(resource['server']))})"
        out.append(line + (f": {' '.join(resource['description'].split())}" if resource["description"] else ""))
    if doc["resources"]:
        out.append("")
    out += [f"## Resource templates ({len(doc['resourceTemplates'])})", ""]
    for template in doc["resourceTemplates"]:
        line = f"- {_code(template['uriTemplate'])} {template['name']} (server {_code(str(template['server']))})"
        out.append(line + (f": {' '.join(template['description'].split())}" if template["description"] else ""))
    return "\n".join(out).rstrip("\n") + "\n"


def _parameters(schema: Mapping[str, Any]) -> list[tuple[str, str, bool, str]]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return []
    required = set(schema.get("required") or ())
    rows = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = spec.get("type", "any")
        kind = " | ".join(map(str, kind)) if isinstance(kind, list) else str(kind)
        rows.append((str(name), kind, name in required, str(spec.get("description") or "")))
    return rows


# -- XML -------------------------------------------------------------------------------------------------------


def _clean(text: Any) -> str:
    """Text XML 1.0 can hold: characters it forbids become U+FFFD."""
    return _XML_INVALID.sub("\ufffd", str(text))


def _xml(doc: Mapping[str, Any]) -> str:
    root = ET.Element("mcp-profile", name=_clean(doc["profile"]))
    if doc["description"]:
        ET.SubElement(root, "description").text = _clean(doc["description"])
    tools = ET.SubElement(root, "tools", count=str(len(doc["tools"])))
    for tool in doc["tools"]:
        element = ET.SubElement(tools, "tool", name=_clean(tool["name"]), server=_clean(tool["server"]))
        if tool.get("title"):
            element.set("title", _clean(tool["title"]))
        ET.SubElement(element, "description").text = _clean(tool["description"])
        ET.SubElement(element, "input-schema", type="application/json").text = _clean(
            json.dumps(tool["inputSchema"], ensure_ascii=False)
        )
    prompts = ET.SubElement(root, "prompts", count=str(len(doc["prompts"])))
    for prompt in doc["prompts"]:
        element = ET.SubElement(prompts, "prompt", name=_clean(prompt["name"]), server=_clean(prompt["server"]))
        ET.SubElement(element, "description").text = _clean(prompt["description"])
        for arg in prompt["arguments"]:
            ET.SubElement(
                element, "argument", name=_clean(arg["name"]), required=str(arg["required"]).lower()
            ).text = _clean(arg["description"])
    resources = ET.SubElement(root, "resources", count=str(len(doc["resources"])))
    for resource in doc["resources"]:
        ET.SubElement(
            resources, "resource", uri=_clean(resource["uri"]), name=_clean(resource["name"]),
            server=_clean(resource["server"]), mimeType=_clean(resource["mimeType"]),
        ).text = _clean(resource["description"])
    templates = ET.SubElement(root, "resource-templates", count=str(len(doc["resourceTemplates"])))
    for template in doc["resourceTemplates"]:
        ET.SubElement(
            templates, "resource-template", uriTemplate=_clean(template["uriTemplate"]), name=_clean(template["name"]),
            server=_clean(template["server"]), mimeType=_clean(template["mimeType"]),
        ).text = _clean(template["description"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
