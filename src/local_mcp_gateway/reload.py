"""Hot reload: watch the configuration repository, and apply each settled change as a new generation.

The watcher looks at the folder of gateway.yaml, `profiles/`, `secrets/` and the source files of in-process
`module` servers. A batch of changes only says "something changed": the whole configuration is loaded again.
A load is accepted only if the files did not change while it was being read (a `git checkout` switching many
files at once), so a generation never mixes two commits' files.

A configuration behind a symlink (git-sync publishes each revision by swapping `<root>/<link>`) is followed: the
folder holding each symlink on the way is watched too, the load reads the resolved folder, and `watch_key` changes
when the link points elsewhere, so the watcher re-aims at the new revision even when its load fails (a tree that
is still incomplete is loaded again once its files settle; until then the running generation keeps serving).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import anyio
from watchfiles import Change, awatch

__all__ = [
    "QUIET_PERIOD_MS",
    "ConfigWatchFilter",
    "module_source",
    "module_stamp",
    "settled_changes",
    "tree_stamp",
    "watch_config",
    "watch_key",
]

logger = logging.getLogger(__name__)

QUIET_PERIOD_MS = 300
"""A change is acted on once the watched files have been quiet this long (editors and git write in bursts)."""

WATCH_STEP_MS = 50
"""How soon the watcher reports a batch of events; the quiet period is timed by `settled_changes` on top."""

MAX_COLLECT_MS = 2000
"""Longest time changes are collected into one batch while writes keep coming."""

WATCH_WAKEUP_MS = 500
"""How long the watcher thread blocks at most; a stop (or shutdown) waits for it, so keep it short."""

CONFIG_SUFFIXES = (".yaml", ".yml", ".age", ".lock.json", ".py")
WATCHED_SUFFIXES = CONFIG_SUFFIXES[:4]
"""Configuration files proper (module sources are watched by name): YAML, secrets and profile lock files."""


class ConfigWatchFilter:
    """Let through changes to configuration files and watched module sources; ignore editor and git debris."""

    def __init__(self, extra_files: Iterable[Path] = ()) -> None:
        self.extra = {str(path) for path in extra_files}

    def __call__(self, change: Change, path: str) -> bool:
        if path in self.extra:
            return True
        name = os.path.basename(path)
        if name.startswith(".") or name.endswith(("~", ".swp", ".swx", ".tmp")):
            return False
        return name.endswith(WATCHED_SUFFIXES)


def module_source(spec: str) -> Path | None:
    """The source file of an in-process server's module (`package.module:attr`), without importing it."""
    module_name = spec.partition(":")[0]
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return None
    return Path(found.origin)


def module_stamp(spec: str) -> str | None:
    """A fingerprint of an in-process server's module source (sha256), None when it has no source file."""
    source = module_source(spec)
    if source is None:
        return None
    try:
        return hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        return None


def tree_stamp(paths: Iterable[Path]) -> str:
    """A cheap fingerprint of the watched files (names, sizes, modification times): equal stamps, same files."""
    digest = hashlib.sha256()
    for folder in sorted(set(paths)):
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name) if folder.is_dir() else []
        except OSError:
            entries = []
        for entry in entries:
            if not entry.name.endswith(CONFIG_SUFFIXES):
                continue
            try:
                stat = entry.stat()
            except OSError:
                continue
            digest.update(f"{entry.path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def watch_key(paths: Iterable[Path]) -> tuple[tuple[str, str, bool], ...]:
    """What the watcher is aimed at: each path, where it resolves to and whether it exists (a change: re-aim)."""
    return tuple((str(path), os.path.realpath(path), path.exists()) for path in sorted(set(paths)))


async def watch_config(paths: Iterable[Path], watch_filter: ConfigWatchFilter, stop: anyio.Event):
    """Yield once per settled batch of changes under `paths` (folders that do not exist are skipped)."""
    existing = [str(path) for path in paths if path.exists()]
    if not existing:
        return
    async for changes in awatch(
        *existing,
        watch_filter=watch_filter,
        step=WATCH_STEP_MS,
        debounce=MAX_COLLECT_MS,
        stop_event=stop,
        recursive=False,
        force_polling=None,
        rust_timeout=WATCH_WAKEUP_MS,
    ):
        logger.debug("configuration changed: %s", sorted({path for _, path in changes}))
        yield changes


async def settled_changes(paths: Iterable[Path], watch_filter: ConfigWatchFilter, stop: anyio.Event):
    """Yield once the watched files changed and then stayed quiet for `QUIET_PERIOD_MS`.

    The watcher reports events within `WATCH_STEP_MS`; the quiet period is timed here, from the last event, so a
    change is acted on one quiet period after the last write (not up to two, as timing it inside the watcher does).
    """
    send, receive = anyio.create_memory_object_stream[None](16)

    async def collect() -> None:
        async with send:
            async for _ in watch_config(paths, watch_filter, stop):
                try:
                    send.send_nowait(None)
                except anyio.WouldBlock:
                    pass  # the settle loop already knows something changed

    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
        async with receive:
            async for _ in receive:
                while True:
                    with anyio.move_on_after(QUIET_PERIOD_MS / 1000) as quiet:
                        await receive.receive()
                    if quiet.cancelled_caught:
                        break
                yield
