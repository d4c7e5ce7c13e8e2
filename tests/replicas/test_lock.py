"""The state lock between real processes: mutual exclusion, a killed holder's lock taken over after its lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from local_mcp_gateway.replicas.lock import LockTimeout, StateLock

pytestmark = pytest.mark.anyio

WORKERS = 3
ROUNDS = 15
PROCESS_WAIT = 60.0
"""Bound on the worker processes (they contend for one lock; on a loaded machine this takes a few seconds)."""

WORKER = textwrap.dedent('''
    import sys, time, anyio
    from pathlib import Path
    from local_mcp_gateway.replicas.lock import StateLock

    folder, rounds = Path(sys.argv[1]), int(sys.argv[2])

    async def main():
        lock = StateLock(folder / ".counter.lock", stale_after=30, wait=60)
        for _ in range(rounds):
            async with lock.hold():
                counter = folder / "counter"
                value = int(counter.read_text()) if counter.exists() else 0
                time.sleep(0.005)  # a read-modify-write that would lose updates without the lock
                counter.write_text(str(value + 1))

    anyio.run(main)
''')

HOLDER = textwrap.dedent('''
    import sys, time, anyio
    from pathlib import Path
    from local_mcp_gateway.replicas.lock import StateLock

    async def main():
        async with StateLock(Path(sys.argv[1]), stale_after=float(sys.argv[2])).hold():
            print("held", flush=True)
            time.sleep(600)

    anyio.run(main)
''')


def test_processes_never_hold_the_lock_together(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(ROUNDS)], start_new_session=True)
               for _ in range(WORKERS)]
    try:
        for worker in workers:
            assert worker.wait(PROCESS_WAIT) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
    assert int((tmp_path / "counter").read_text()) == WORKERS * ROUNDS
    assert not (tmp_path / ".counter.lock").exists()


def start_holder(tmp_path: Path, lock_path: Path, stale_after: float) -> subprocess.Popen[str]:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(lock_path), str(stale_after)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


async def test_a_killed_holders_lock_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    lock_path = tmp_path / "state" / ".refresh.lock"
    holder = start_holder(tmp_path, lock_path, stale_after=1.5)
    os.killpg(holder.pid, signal.SIGKILL)  # a replica killed while refreshing
    holder.wait(10)
    left = json.loads(lock_path.read_text())
    lock = StateLock(lock_path, stale_after=1.5, wait=30)
    async with lock.hold():
        mine = json.loads(lock_path.read_text())
        assert mine["owner"] != left["owner"]
    assert lock.takeovers == 1
    assert not lock_path.exists()
    assert [p.name for p in lock_path.parent.iterdir()] == []  # the stale file was cleared, not left aside


async def test_a_live_holders_lock_is_not_taken_within_its_lease(tmp_path: Path) -> None:
    lock_path = tmp_path / ".refresh.lock"
    holder = start_holder(tmp_path, lock_path, stale_after=300)
    try:
        lock = StateLock(lock_path, stale_after=300, wait=0.5)
        with pytest.raises(LockTimeout, match="held by another gateway"):
            async with lock.hold():
                pass
        assert lock.takeovers == 0
        assert json.loads(lock_path.read_text())["owner"].split(":")[1] == str(holder.pid)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)


async def test_tasks_of_one_process_queue_for_the_lock(tmp_path: Path) -> None:
    inside: list[int] = []
    overlaps = 0

    async def task(n: int) -> None:
        nonlocal overlaps
        async with StateLock(tmp_path / ".lock", wait=30).hold():
            overlaps += bool(inside)
            inside.append(n)
            await anyio.sleep(0.01)
            inside.remove(n)

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(task, n)
    assert overlaps == 0


async def test_an_unreadable_lock_file_is_judged_by_its_age(tmp_path: Path) -> None:
    lock_path = tmp_path / ".lock"
    lock_path.write_text("{half-written")
    old = time.time() - 10
    os.utime(lock_path, (old, old))
    lock = StateLock(lock_path, stale_after=2, wait=10)
    async with lock.hold():
        pass
    assert lock.takeovers == 1
