"""Aggregation of a profile's upstream listings into what its clients see (pure: values in, values out).

Tools and prompts get client names (`naming.client_name`), pass the server's include/exclude globs and
overrides; the first server in profile order wins a clashing name and the clash is recorded. Resources keep
their URIs; a read goes to the first server (in profile order) that listed the URI or whose template matches.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import mcp.types as types
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from local_mcp_gateway.naming import client_name, matches

__all__ = ["PAGE_SIZE", "Catalog", "Route", "build_catalog", "coerce_arguments", "page"]

PAGE_SIZE = 5000
"""Items per page offered to clients for every list method. Each page costs a whole HTTP request through the
stack (about 2 ms of the hop's CPU here, whatever its size, once pages are stored serialised: `profile/pages.py`)
and the client a round trip, while servers and peer proxies commonly answer with all their items in one page; so
a page holds up to 5,000 items (a few MB of JSON for typical tools, well inside `max_buffered_result_bytes`), and
only very large profiles are paged (docs/benchmarks.md, "Where the time goes")."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a client-visible name leads: the server (its key in the profile) and the upstream's own name."""

    server: str
    upstream_name: str
    input_schema: Mapping[str, Any] | None = None


@dataclass
class Catalog:
    """Everything a profile's clients see, with the routes back to the upstreams."""

    tools: list[types.Tool] = field(default_factory=list)
    tool_routes: dict[str, Route] = field(default_factory=dict)
    prompts: list[types.Prompt] = field(default_factory=list)
    prompt_routes: dict[str, Route] = field(default_factory=dict)
    resources: list[types.Resource] = field(default_factory=list)
    resource_routes: dict[str, str] = field(default_factory=dict)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    template_routes: list[tuple[UriTemplate | None, str, str]] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)
    memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Results derived from this catalog and nothing else (serialised list pages, a caller's visible tools):
    a new catalog starts empty, so nothing here outlives the listings it was made from (`profile/pages.py`)."""

    def server_for_uri(self, uri: str) -> str | None:
        """The server that serves `uri`: the first that listed it, else the first whose template matches."""
        server = self.resource_routes.get(uri)
        if server is not None:
            return server
        for template, text, name in self.template_routes:
            if template is not None and template.match(uri) is not None:
                return name
            if template is None and text == uri:
                return name
        return None

    def server_for_template(self, uri_template: str) -> str | None:
        for _, text, name in self.template_routes:
            if text == uri_template:
                return name
        return None

    def server_count(self, server: str) -> int:
        """How many tools of `server` are visible."""
        return sum(1 for route in self.tool_routes.values() if route.server == server)




def build_catalog(entries: Sequence[tuple[Any, Any]]) -> Catalog:
    """Aggregate `(server settings, Listings)` pairs, given in profile order."""
    catalog = Catalog()
    for server, listings in entries:
        if listings is None:
            continue
        _add_tools(catalog, server, listings.tools)
        _add_prompts(catalog, server, listings.prompts)
        for resource in listings.resources:
            uri = str(resource.uri)
            if uri in catalog.resource_routes:
                continue
            catalog.resource_routes[uri] = server.name
            catalog.resources.append(resource)
        for template in listings.templates:
            text = template.uri_template
            if any(existing == text for _, existing, _ in catalog.template_routes):
                continue
            try:
                parsed: UriTemplate | None = UriTemplate.parse(text)
            except (InvalidUriTemplate, ValueError):
                parsed = None
            catalog.template_routes.append((parsed, text, server.name))
            catalog.templates.append(template)
    return catalog


def _add_tools(catalog: Catalog, server: Any, tools: Sequence[types.Tool]) -> None:
    config = server.tools
    for tool in tools:
        if not matches(tool.name, config.include, config.exclude):
            continue
        override = config.overrides.get(tool.name)
        update: dict[str, Any] = {}
        shown = tool.name
        if override is not None:
            if override.name:
                shown = override.name
            if override.description is not None:
                update["description"] = override.description
            if override.input_schema is not None:
                update["input_schema"] = dict(override.input_schema)
        name = client_name(server.prefix, shown)
        if name in catalog.tool_routes:
            first = catalog.tool_routes[name].server
            catalog.clashes.append(f"tool {name!r} of server {server.name!r} is hidden by server {first!r}")
            continue
        update["name"] = name
        visible = tool.model_copy(update=update)
        catalog.tool_routes[name] = Route(server.name, tool.name, visible.input_schema)
        catalog.tools.append(visible)


def _add_prompts(catalog: Catalog, server: Any, prompts: Sequence[types.Prompt]) -> None:
    for prompt in prompts:
        name = client_name(server.prefix, prompt.name)
        if name in catalog.prompt_routes:
            first = catalog.prompt_routes[name].server
            catalog.clashes.append(f"prompt {name!r} of server {server.name!r} is hidden by server {first!r}")
            continue
        catalog.prompt_routes[name] = Route(server.name, prompt.name)
        catalog.prompts.append(prompt.model_copy(update={"name": name}))


# -- pagination offered to clients ----------------------------------------------------------------------------

T = TypeVar("T")


def page(items: Sequence[T], cursor: str | None, size: int = PAGE_SIZE) -> tuple[list[T], str | None]:
    """One page of `items` starting at `cursor`, and the cursor of the next page (None on the last)."""
    start = _decode_cursor(cursor) if cursor else 0
    end = start + size
    next_cursor = _encode_cursor(end) if end < len(items) else None
    return list(items[start:end]), next_cursor


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, number = text.partition(":")
        offset = int(number)
        if tag != "o" or offset < 0:
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise MCPError(types.INVALID_PARAMS, "Invalid cursor: list again without a cursor") from None
    return offset


# -- argument coercion ----------------------------------------------------------------------------------------

_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def coerce_arguments(arguments: Mapping[str, Any] | None, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Convert string arguments to the type the input schema asks for (number, integer, boolean, array, object).

    Clients often send every argument as a string; a value that does not convert is passed on unchanged, so the
    upstream reports the error in its own words.
    """
    if not arguments or not schema:
        return dict(arguments) if arguments is not None else None
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return dict(arguments)
    result = dict(arguments)
    for key, value in arguments.items():
        if not isinstance(value, str):
            continue
        spec = properties.get(key)
        if not isinstance(spec, Mapping):
            continue
        wanted = spec.get("type")
        kinds = [wanted] if isinstance(wanted, str) else list(wanted) if isinstance(wanted, list) else []
        if "string" in kinds:
            continue
        for kind in kinds:
            converted = _convert(value, kind)
            if converted is not _UNCHANGED:
                result[key] = converted
                break
    return result


_UNCHANGED = object()


def _convert(value: str, kind: str) -> Any:
    text = value.strip()
    try:
        if kind == "integer":
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return int(number) if float(number).is_integer() else _UNCHANGED
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
        if kind == "boolean":
            return _BOOLEANS.get(text.lower(), _UNCHANGED)
        if kind in ("array", "object"):
            parsed = json.loads(text)
            expected = list if kind == "array" else dict
            return parsed if isinstance(parsed, expected) else _UNCHANGED
        if kind == "null" and text.lower() == "null":
            return None
    except (ValueError, OverflowError):
        return _UNCHANGED
    return _UNCHANGED
