"""YAML files to plain Python values, with the line and column of every key and item.

Only PyYAML's SafeLoader *composer* runs (text -> nodes); values are built here, so no tag outside
the standard scalar, mapping and sequence ones is ever constructed (`!!python/object` is refused,
not executed). Building counts nodes and depth, so an alias bomb ("billion laughs") or a
self-referencing anchor is refused quickly with bounded memory. Every failure is a `ConfigIssue`
with a 1-based position.

Mapping keys are kept as the text written (`on:` stays the string "on", not True): configuration
keys are names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from local_mcp_gateway.errors import ConfigError, ConfigIssue

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "Document", "dotted", "load_yaml", "parse_yaml"]

MAX_FILE_BYTES = 1024 * 1024
"""Largest configuration file read; real ones are a few KiB."""

MAX_NODES = 100_000
"""Most values built from one file, counting every alias expansion (stops alias bombs early)."""

MAX_DEPTH = 64
"""Deepest nesting accepted (stops self-referencing anchors and pathological nesting)."""

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_MERGE_TAG = _TAG + "merge"
_SHOWN_PATH_PARTS = 3  # of a runaway path, in messages
_LEADING_TAB = re.compile(r"^ *\t", re.MULTILINE)

Path_ = tuple[str | int, ...]


def dotted(path: Path_) -> str:
    """`("servers", "x", "args", 0)` -> `servers.x.args[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Document:
    """A parsed file: its plain value, raw bytes and where each key or item was written."""

    file: Path
    data: Any
    raw: bytes
    positions: dict[Path_, tuple[int, int]] = field(repr=False)
    """Path tuple -> (line, column), 1-based: a mapping entry's key, a sequence item, `()` the root."""

    def position(self, path: Path_) -> tuple[int, int] | None:
        """Where `path` (or its nearest written ancestor) is, 1-based."""
        path = tuple(path)
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]

    def issue(self, path: Path_, message: str) -> ConfigIssue:
        """A `ConfigIssue` at `path` of this document."""
        where = self.position(path)
        line, column = where if where else (None, None)
        return ConfigIssue(file=self.file, message=message, line=line, column=column, path=dotted(path))

    @property
    def index(self) -> dict[str, tuple[int, int]]:
        """The positions keyed by dotted path."""
        return {dotted(p): pos for p, pos in self.positions.items()}


class _Refused(Exception):
    def __init__(self, message: str, node: Node | None = None, path: Path_ = ()) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.path = path


def _pos(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns a composed node graph into plain values, counting nodes and depth."""

    def __init__(self) -> None:
        self.count = 0
        self.positions: dict[Path_, tuple[int, int]] = {}
        self._scalars = SafeConstructor()

    def build(self, node: Node, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Refused(
                f"too many values (more than {MAX_NODES}, counting alias expansions); "
                "is an anchor/alias expanding exponentially? write the values out instead",
                node, path[:_SHOWN_PATH_PARTS],
            )
        if depth > MAX_DEPTH:
            raise _Refused(
                f"nested deeper than {MAX_DEPTH} levels; an anchor may refer to itself", node, path[:_SHOWN_PATH_PARTS]
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            items = []
            for i, child in enumerate(node.value):
                self.positions.setdefault((*path, i), _pos(child))
                items.append(self.build(child, (*path, i), depth + 1))
            return items
        if isinstance(node, MappingNode) and node.tag == _MAP_TAG:
            return self._mapping(node, path, depth)
        raise _Refused(_tag_message(node.tag), node, path)

    def _scalar(self, node: ScalarNode, path: Path_) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise _Refused(_tag_message(node.tag), node, path)
        if node.tag == _TAG + "timestamp":
            return node.value  # dates stay text; nothing here is a date
        kind = node.tag[len(_TAG):]
        try:
            return getattr(self._scalars, f"construct_yaml_{kind}")(node)
        except (ValueError, yaml.YAMLError) as exc:
            raise _Refused(f"cannot read this {kind}: {exc}", node, path) from None

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in _merge_sources(value_node, path):
                    value = self.build(source, path, depth + 1)
                    for key, item in value.items():
                        merged.setdefault(key, item)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                raise _Refused("a key must be a plain name, not a list or mapping", key_node, path)
            key = str(key_node.value)
            if key in result:
                first = self.positions.get((*path, key))
                where = f" (first at line {first[0]})" if first else ""
                raise _Refused(f"duplicate key '{key}'{where}; remove one of them", key_node, (*path, key))
            self.positions[(*path, key)] = _pos(key_node)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        for key, item in merged.items():
            result.setdefault(key, item)
        return result


def _merge_sources(node: Node, path: Path_) -> Iterator[Node]:
    if isinstance(node, MappingNode):
        yield node
    elif isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
        yield from node.value
    else:
        raise _Refused("'<<' merges a mapping or a list of mappings", node, path)


def _tag_message(tag: str) -> str:
    shown = tag if len(tag) <= 60 else tag[:60] + "..."
    return f"tag '{shown}' is not allowed; only plain strings, numbers, booleans, null, lists and mappings"


def _read(file: Path) -> bytes:
    if not file.exists():
        raise _Refused(f"file not found: {file}; create it or pass --config")
    if file.is_dir():
        raise _Refused("is a directory, not a YAML file; rename or remove it")
    if not file.is_file():
        raise _Refused("is not a regular file (a FIFO, socket or device); replace it with a YAML file")
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Refused(f"cannot read: {exc.strerror or exc}; check its permissions") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _Refused(f"file is larger than {MAX_FILE_BYTES} bytes; configuration files are small, is this the right file?")
    return raw


def parse_yaml(raw: bytes, file: Path) -> Document:
    """Parse `raw` (the bytes of `file`) into a `Document` whose root is a mapping; raises `ConfigError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            ConfigIssue(file, "not valid UTF-8 text; save the file as UTF-8", line, column)
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        tab = _LEADING_TAB.search(text)  # a tab in block-scalar text is fine; blame tabs only on failure
        if tab and (mark is None or text.count("\n", 0, tab.start()) <= mark.line):
            line = text.count("\n", 0, tab.start()) + 1
            column = tab.end() - tab.start()
            raise ConfigError(
                ConfigIssue(file, "tab used for indentation; YAML indents with spaces only", line, column)
            ) from None
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        at = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ConfigError(ConfigIssue(file, f"YAML syntax: {problem}{context}", *at)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(ConfigIssue(file, f"YAML syntax: {exc}")) from None
    if root is None:
        raise ConfigError(ConfigIssue(file, "file is empty; it needs at least `version: 1` (gateway.yaml) or `servers:` (a profile)", 1, 1))
    builder = _Builder()
    try:
        data = builder.build(root, (), 0)
    except _Refused as exc:
        where = _pos(exc.node) if exc.node is not None else (None, None)
        raise ConfigError(ConfigIssue(file, exc.message, where[0], where[1], dotted(exc.path))) from None
    except RecursionError:
        raise ConfigError(ConfigIssue(file, "nested too deeply", *_pos(root))) from None
    if not isinstance(data, dict):
        what = "a list" if isinstance(data, list) else "a single value"
        raise ConfigError(
            ConfigIssue(file, f"the top level is {what}; it must be a mapping of keys (`key: value`)", *_pos(root))
        )
    builder.positions[()] = _pos(root)
    return Document(file=file, data=data, raw=raw, positions=builder.positions)


def load_yaml(file: Path) -> Document:
    """Read and parse one YAML file; raises `ConfigError` with the position of the first problem."""
    try:
        raw = _read(file)
    except _Refused as exc:
        raise ConfigError(ConfigIssue(file, exc.message)) from None
    return parse_yaml(raw, file)
