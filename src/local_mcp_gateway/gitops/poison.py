"""Heuristics for tool definitions that look poisoned: text aimed at the model rather than the user.

Each check returns plain-language warnings; none of them blocks anything (they are shown by `plan` and `lock`
for a reviewer to judge). Checked: instructions to the model ("ignore previous instructions", "do not tell the
user", requests to read files or keys), invisible or bidirectional Unicode, tool names that imitate another
server's, and input schemas gaining secret-looking parameters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

__all__ = ["definition_warnings", "imitation_warnings", "new_secret_parameters", "secret_parameters"]

_INSTRUCTIONS = [
    (re.compile(r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}\b(instructions?|prompts?|rules?)\b", re.I | re.S),
     "tells the model to ignore its instructions"),
    (re.compile(r"\b(do not|don't|never)\b.{0,20}\b(tell|inform|mention|reveal|show|notify)\b.{0,20}\b(the )?user\b", re.I | re.S),
     "tells the model to keep something from the user"),
    (re.compile(r"<\s*(important|system|instructions?|secret)\s*>", re.I), "hides instructions in a pseudo tag"),
    (re.compile(r"\b(read|open|cat|send|include|upload|pass)\b.{0,40}(~/\.ssh|id_rsa|id_ed25519|\.env\b|/etc/passwd|\.aws/credentials|\.netrc|private key|api[ _-]?keys?|credentials|mcp\.json)", re.I | re.S),
     "asks to read or send files or keys"),
    (re.compile(r"\b(before|instead of)\b.{0,30}\b(using|calling)\b.{0,30}\b(any )?other tools?\b", re.I | re.S),
     "tries to steer how other tools are used"),
]

_SECRET_NAME = re.compile(r"(passw(or)?d|passphrase|secret|token|api[_-]?key|apikey|private[_-]?key|credential|ssh[_-]?key|session[_-]?id|cookie|auth)", re.I)


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}/{i}")


def _hidden_characters(text: str) -> list[str]:
    found = []
    for char in text:
        code = ord(char)
        if unicodedata.category(char) == "Cf" or 0xE0000 <= code <= 0xE007F or code in (0x115F, 0x1160, 0x3164):
            label = f"U+{code:04X}"
            if label not in found:
                found.append(label)
    return found


def definition_warnings(definition: dict[str, Any]) -> list[str]:
    """Warnings about one tool, prompt or template definition (its texts, and every string in its schemas)."""
    warnings: list[str] = []
    for path, text in _strings(definition):
        where = path or "/"
        for pattern, what in _INSTRUCTIONS:
            match = pattern.search(text)
            if match:
                warnings.append(f"{where} {what}: {match.group(0)[:80]!r}")
        hidden = _hidden_characters(text)
        if hidden:
            warnings.append(f"{where} contains invisible or bidirectional Unicode ({', '.join(hidden[:5])})")
    name = str(definition.get("name") or "")
    hidden = _hidden_characters(name)
    if hidden and not any(w.startswith("/name ") for w in warnings):
        warnings.append(f"/name contains invisible or bidirectional Unicode ({', '.join(hidden[:5])})")
    return warnings


def secret_parameters(definition: dict[str, Any]) -> set[str]:
    """Input schema property names (JSON pointers) that look like secrets."""
    found: set[str] = set()

    def walk(schema: Any, path: str) -> None:
        if not isinstance(schema, dict):
            return
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key, sub in properties.items():
                pointer = f"{path}/properties/{key}"
                if _SECRET_NAME.search(str(key)):
                    found.add(pointer)
                walk(sub, pointer)
        for key in ("items", "additionalProperties"):
            walk(schema.get(key), f"{path}/{key}")

    walk(definition.get("inputSchema"), "/inputSchema")
    return found


def new_secret_parameters(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Secret-looking parameters `after` has that `before` did not (all of them for a new definition)."""
    old = secret_parameters(before) if before else set()
    return sorted(secret_parameters(after) - old)


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", name).casefold())


def imitation_warnings(tools: dict[str, Any], prefixes: dict[str, str]) -> dict[str, list[str]]:
    """Per client tool name: warnings when it imitates another server's tool or name.

    `tools` maps client names to items with `.server` and `.definition`; `prefixes` maps server keys to prefixes.
    A tool imitates when its name, without its own prefix, carries another server's prefix or key, or equals
    (ignoring case and punctuation) a tool of another server.
    """
    out: dict[str, list[str]] = {}
    by_normal: dict[str, list[tuple[str, str]]] = {}
    for name, item in tools.items():
        own = prefixes.get(item.server, item.server)
        bare = name[len(own) + 2:] if own and name.startswith(own + "__") else name
        by_normal.setdefault(_normal(bare), []).append((name, item.server))
        for server, prefix in prefixes.items():
            if server == item.server:
                continue
            for label in {prefix, server} - {""}:
                if _normal(bare).startswith(_normal(label)) and len(_normal(label)) >= 3:
                    out.setdefault(name, []).append(f"its name imitates server {server!r} (it is offered by {item.server!r})")
                    break
    for same in by_normal.values():
        servers = {server for _, server in same}
        if len(servers) > 1:
            for name, server in same:
                others = sorted(servers - {server})
                out.setdefault(name, []).append(f"its name looks like a tool of server {', '.join(map(repr, others))}")
    return out
