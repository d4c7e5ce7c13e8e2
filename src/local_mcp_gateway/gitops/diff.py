"""Differences between two definitions: a word diff of texts and the JSON-pointer paths of schema changes."""

from __future__ import annotations

import difflib
from typing import Any

__all__ = ["json_pointer_changes", "word_diff"]


def word_diff(before: str | None, after: str | None) -> str:
    """The words of `after`, removed ones as `[-old-]` and added ones as `{+new+}` (git's --word-diff=plain style).

    Whitespace is normalised to single spaces: a reviewer reads which words changed, not how they wrap.
    """
    old = (before or "").split()
    new = (after or "").split()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(" ".join(old[i1:i2]))
            continue
        if i2 > i1:
            out.append(f"[-{' '.join(old[i1:i2])}-]")
        if j2 > j1:
            out.append(f"{{+{' '.join(new[j1:j2])}+}}")
    return " ".join(out)


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def json_pointer_changes(before: Any, after: Any, path: str = "") -> list[dict[str, str]]:
    """RFC 6901 pointers of what was added, removed or changed from `before` to `after` (deepest paths)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, str]] = []
        for key in sorted(set(before) | set(after), key=str):
            pointer = f"{path}/{_escape(key)}"
            if key not in before:
                out.append({"op": "added", "path": pointer})
            elif key not in after:
                out.append({"op": "removed", "path": pointer})
            else:
                out.extend(json_pointer_changes(before[key], after[key], pointer))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (a, b) in enumerate(zip(before, after)):
            out.extend(json_pointer_changes(a, b, f"{path}/{i}"))
        return out
    if before == after and type(before) is type(after):
        return []
    return [{"op": "changed", "path": path or "/"}]
