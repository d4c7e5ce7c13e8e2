"""A configuration published the way git-sync does it: revisions in `.worktrees/<sha>`, a symlink swapped over."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx2
import pytest
import yaml

from local_mcp_gateway.replicas.gitsync import config_commit, symlinks_on
from tests.conftest import fixture_server, mcp_client
from tests.gateway.test_supervision import wait_for

pytestmark = pytest.mark.anyio

SWAP_WAIT = 20.0
"""Bound on a swap reaching the gateway (quiet period, load, upstream start, on a loaded machine)."""


class SyncedRepo:
    """A git repository at `root` with revisions checked out as worktrees and published by the link `current`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"  # where commits are made (git-sync's upstream, in one repository here)
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.work)], check=True)

    @property
    def link(self) -> Path:
        return self.root / "current"

    @property
    def config(self) -> Path:
        return self.link / "gateway.yaml"

    def git(self, *args: str) -> str:
        command = ["git", "-C", str(self.work), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()

    def commit(self, profiles: dict[str, dict], message: str) -> str:
        (self.work / "gateway.yaml").write_text(yaml.safe_dump({"version": 1}))
        folder = self.work / "profiles"
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.yaml"):
            old.unlink()
        for slug, servers in profiles.items():
            (folder / f"{slug}.yaml").write_text(yaml.safe_dump({"servers": servers}))
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def check_out(self, sha: str) -> Path:
        target = self.root / ".worktrees" / sha
        self.git("worktree", "add", "-q", "--detach", str(target), sha)
        return target

    def publish(self, target: Path) -> None:
        """git-sync's swap: a new symlink under a temporary name renamed over the old one (one atomic step)."""
        temporary = self.root / "tmp-link"
        os.symlink(os.path.relpath(target, self.root), temporary)
        os.replace(temporary, self.link)


def echo(name: str) -> dict:
    return {"a": fixture_server("echo_server.py", "--name", name)}


async def test_a_symlink_swap_is_followed_and_a_half_written_tree_waits(tmp_path: Path, gateway_factory) -> None:
    repo = SyncedRepo(tmp_path / "git")
    first = repo.commit({"p": echo("v1")}, "v1")
    second = repo.commit({"p": echo("v2"), "q": echo("q")}, "v2")
    old_tree = repo.check_out(first)
    repo.publish(old_tree)
    gateway = gateway_factory(repo.config)
    status = gateway.status()
    assert status["config_commit"] == first
    digest = status["config_digest"]

    repo.publish(repo.check_out(second))
    wait_for(lambda: gateway.status()["config_commit"] == second, timeout=SWAP_WAIT)
    status = gateway.status()
    assert set(status["profiles"]) == {"p", "q"} and status["config_digest"] != digest
    repo.git("worktree", "remove", "--force", str(old_tree))  # git-sync removes the old revision
    async with mcp_client(gateway.url("p")) as client:
        assert (await client.call_tool("a__whoami", {})).content[0].text == "v2"

    # A revision whose files are not all there yet: the running generation keeps serving until they are.
    half = repo.root / ".worktrees" / ("f" * 40)
    (half / "profiles").mkdir(parents=True)
    (half / "gateway.yaml").write_text(yaml.safe_dump({"version": 1, "default_profile": "r"}))
    (half / "profiles" / "p.yaml").write_text("servers:\n  a: {command: ")  # cut off mid-write
    generation = gateway.status()["generation"]
    repo.publish(half)
    wait_for(lambda: gateway.status()["last_reload_error"] is not None, timeout=SWAP_WAIT)
    status = gateway.status()
    assert status["generation"] == generation and status["config_commit"] == second
    async with mcp_client(gateway.url("q")) as client:
        assert (await client.call_tool("a__whoami", {})).content[0].text == "q"

    (half / "profiles" / "p.yaml").write_text(yaml.safe_dump({"servers": echo("v3")}))
    (half / "profiles" / "r.yaml").write_text(yaml.safe_dump({"servers": echo("r")}))
    wait_for(lambda: gateway.status()["config_commit"] == "f" * 40, timeout=SWAP_WAIT)
    status = gateway.status()
    assert status["last_reload_error"] is None and set(status["profiles"]) == {"p", "r"}
    assert httpx2.get(f"{gateway.base_url}/readyz", timeout=10).status_code == 200


def test_the_commit_of_a_repository_a_worktree_and_packed_refs(tmp_path: Path) -> None:
    repo = SyncedRepo(tmp_path / "git")
    sha = repo.commit({"p": echo("v1")}, "v1")
    assert config_commit(repo.work) == sha  # HEAD -> refs/heads/main, a loose ref
    assert config_commit(repo.work / "profiles") == sha  # a subfolder of the repository
    repo.git("pack-refs", "--all")
    assert config_commit(repo.work) == sha  # the ref only in packed-refs
    tree = repo.check_out(sha)
    assert config_commit(tree) == sha  # a worktree: `.git` is a file pointing to its git dir
    plain = tmp_path / "plain"
    plain.mkdir()
    assert config_commit(plain) is None


def test_symlinks_on_the_way_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "rev").mkdir()
    os.symlink("rev", tmp_path / "current")
    assert symlinks_on(tmp_path / "current" / "gateway.yaml")[-1] == tmp_path / "current"
    assert tmp_path / "rev" not in symlinks_on(tmp_path / "rev" / "gateway.yaml")
