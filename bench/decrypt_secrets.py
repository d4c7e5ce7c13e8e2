"""Startup cost of secrets: decrypt 200 age files with `SecretStore.load`, against a 1 s target.

Run: `python bench/decrypt_secrets.py [--count N] [--repeat R]`. Prints the best of R runs (each with a fresh
store, so nothing comes from the cache) and exits 1 when it misses the target.
"""

from __future__ import annotations

import sys


import argparse
import tempfile
import time
from pathlib import Path

from local_mcp_gateway.redact import Redactor
from local_mcp_gateway.secrets import Identity, SecretStore, encrypt_to

DEFAULT_COUNT = 200
DEFAULT_REPEAT = 3
TARGET_SECONDS = 1.0
"""Decrypting every secret must not make a start or a reload feel slow."""


def make_secrets(folder: Path, identity: Identity, count: int) -> list[str]:
    """Write `count` secrets encrypted to `identity` (and a second recipient, as teams have) into `folder`."""
    teammate = Identity.generate().recipient
    names = []
    for index in range(count):
        name = f"secret_{index:04d}"
        value = f"value-{index:04d}-" + "x" * 40
        (folder / f"{name}.age").write_bytes(encrypt_to([identity.recipient, teammate], value.encode()))
        names.append(name)
    return names


def time_load(folder: Path, identity: Identity, names: list[str]) -> float:
    """Seconds one fresh store takes to decrypt all `names`."""
    store = SecretStore(folder, identity, Redactor())
    started = time.perf_counter()
    loaded = store.load(names)
    elapsed = time.perf_counter() - started
    assert len(loaded) == len(names)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of secrets (default 200)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs; the best is reported")
    args = parser.parse_args(argv)
    identity = Identity.generate()
    with tempfile.TemporaryDirectory(prefix="secrets-bench-") as tmp:
        folder = Path(tmp)
        names = make_secrets(folder, identity, args.count)
        best = min(time_load(folder, identity, names) for _ in range(max(1, args.repeat)))
    verdict = "under" if best < TARGET_SECONDS else "OVER"
    print(f"decrypted {args.count} secrets in {best:.3f} s (best of {args.repeat}; "
          f"{best / args.count * 1000:.2f} ms each): {verdict} the {TARGET_SECONDS:.0f} s target")
    return 0 if best < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
