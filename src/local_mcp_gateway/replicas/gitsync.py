"""A configuration checked out by git-sync (or any tool that swaps a symlink): which links to watch, which commit.

git-sync keeps each revision in a folder of its own (`<root>/.worktrees/<sha>`) and publishes it by replacing the
symlink `<root>/<link>` in one rename. A gateway started with `--config <root>/<link>/gateway.yaml` therefore
watches the folder holding each symlink on the way to its configuration (a swap is an event there), loads from the
resolved folder (so one generation never mixes two revisions), and reports the commit it serves in `/status`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["config_commit", "symlinks_on"]

_SHA = re.compile(r"(?<![0-9a-f])([0-9a-f]{40}|[0-9a-f]{64})$")
_MAX_PACKED_REFS = 4 * 1024 * 1024


def symlinks_on(path: Path) -> list[Path]:
    """The symlinks among the folders leading to `path` (absolute), outermost first."""
    path = Path(os.path.abspath(path))
    found = []
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        if current.is_symlink():
            found.append(current)
    return found


def config_commit(folder: Path) -> str | None:
    """The git commit checked out in `folder` (a repository, a worktree, or a git-sync revision folder), or None."""
    folder = Path(os.path.realpath(folder))
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        try:
            if dot_git.is_dir():
                return _head(dot_git)
            if dot_git.is_file():
                text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
                if text.startswith("gitdir:"):
                    gitdir = Path(text[len("gitdir:"):].strip())
                    return _head(gitdir if gitdir.is_absolute() else candidate / gitdir)
                return None
        except OSError:
            return None
    match = _SHA.search(folder.name)  # a revision folder without git metadata next to it
    return match.group(1) if match else None


def _head(gitdir: Path) -> str | None:
    head = (gitdir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    if not head.startswith("ref:"):
        return head if _SHA.fullmatch(head) else None
    ref = head[len("ref:"):].strip()
    common = gitdir
    commondir = gitdir / "commondir"
    if commondir.is_file():
        pointed = Path(commondir.read_text(encoding="utf-8").strip())
        common = pointed if pointed.is_absolute() else gitdir / pointed
    for base in (gitdir, common):
        try:
            value = (base / ref).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if _SHA.fullmatch(value):
            return value
    packed = common / "packed-refs"
    if packed.is_file() and packed.stat().st_size <= _MAX_PACKED_REFS:
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.fullmatch(sha):
                return sha
    return None
