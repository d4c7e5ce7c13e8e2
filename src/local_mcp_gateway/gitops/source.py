"""Where a configuration comes from: a folder, or a git ref unpacked into a temporary folder; and its git commit.

`plan --base main` needs the files of another commit: `git archive` writes them into a temporary folder (nothing
in the work tree, the index or the worktree list changes). `/status` shows the commit the running configuration
came from: the target of a git-sync style symlink (`current -> .worktrees/<sha>`), else the work tree's HEAD.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local_mcp_gateway.errors import GatewayError

__all__ = ["GitError", "config_commit", "config_at"]

GIT_TIMEOUT = 60.0
"""Longest a git command may take (an archive of a large repository on a slow disk)."""

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class GitError(GatewayError):
    """git is missing, or a ref does not name a commit."""


def _git(args: list[str], cwd: Path, *, binary: bool = False) -> Any:
    git = shutil.which("git")
    if git is None:
        raise GitError("git is not installed (not found on PATH); install git, or give --base/--head a folder")
    try:
        done = subprocess.run([git, *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:g} s in {cwd}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {message[-1] if message else done.returncode}")
    return done.stdout if binary else done.stdout.decode().strip()


@contextmanager
def config_at(where: str, head_config: Path) -> Iterator[Path]:
    """The gateway.yaml of `where`: a folder (or a file) as it is, else a git ref of the repository holding
    `head_config`, unpacked into a temporary folder removed on exit."""
    path = Path(where)
    if path.is_file():
        yield path.resolve()
        return
    if path.is_dir():
        yield (path / head_config.name).resolve()
        return
    folder = head_config.resolve().parent
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], folder))
    except GitError as exc:
        if "not installed" in str(exc):
            raise
        raise GitError(f"{where!r} is not a folder, and {folder} is not in a git repository to find it as a ref") from None
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{where}^{{commit}}"], top)
    except GitError:
        raise GitError(f"{where!r} is neither a folder nor a commit, branch or tag of the git repository {top}") from None
    relative = head_config.resolve().relative_to(top.resolve())
    archive = _git(["archive", "--format=tar", commit], top, binary=True)
    with tempfile.TemporaryDirectory(prefix="lmg-plan-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
        except tarfile.TarError as exc:  # e.g. a symlink pointing outside the repository
            raise GitError(f"cannot unpack {where!r} of {top}: {exc}") from None
        yield Path(tmp) / relative


def config_commit(root: Path) -> dict[str, Any] | None:
    """The commit the configuration in `root` came from, or None when it is not under git.

    `{"commit", "source": "symlink", "link"}` when a symlink on the way points at a folder named by a commit
    (git-sync's `current -> .worktrees/<sha>`); `{"commit", "source": "git", "dirty"}` for a work tree.
    """
    path = Path(os.path.abspath(root))
    for candidate in [path, *path.parents]:
        if candidate.is_symlink():
            target = Path(os.readlink(candidate))
            if _COMMIT.match(target.name):
                return {"commit": target.name, "source": "symlink", "link": str(candidate)}
    if shutil.which("git") is None:  # a slim image: read .git itself (no dirty flag without git)
        from local_mcp_gateway.replicas.gitsync import config_commit as read_head

        commit = read_head(path)
        return None if commit is None else {"commit": commit, "source": "git", "dirty": None}
    try:
        commit = _git(["rev-parse", "--verify", "HEAD"], path)
        dirty = bool(_git(["status", "--porcelain", "--untracked-files=no", "--", "."], path))
    except GitError:
        return None
    return {"commit": commit, "source": "git", "dirty": dirty}
