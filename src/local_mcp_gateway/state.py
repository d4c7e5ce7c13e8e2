"""Run-time state (OAuth tokens, client registrations, server metadata) as age-encrypted files under `state/`.

Each entry is one file, `state_dir/<relpath>.age`, encrypted to the gateway's own key plus `secrets.recipients`
(so the holder of a new key can take over after `secret rotate`), written atomically: a temporary file in the
same folder, fsync, rename over the old one, fsync the folder. Files are 0600 and folders 0700. A crash leaves
either the old or the new content, never a mix. No database.

The atomic-write functions here are also what `secret set`, `secret rotate` and `keygen` write files with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.secrets import SECRET_SUFFIX, Identity, encrypt_to, parse_recipient

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "StateStore",
    "atomic_write",
    "discard_temp",
    "fsync_dir",
    "install_temp",
    "make_dirs",
    "write_temp",
]

logger = logging.getLogger("local_mcp_gateway.state")

FILE_MODE = 0o600
"""Mode of every file the gateway writes that holds key material or ciphertext."""
DIR_MODE = 0o700
"""Mode of folders the gateway creates for such files."""
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


# --------------------------------------------------------------------------------------------- atomic files


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(folder: Path, mode: int = DIR_MODE) -> None:
    """Create `folder` and missing parents; the ones created here get `mode` exactly (umask notwithstanding)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir(mode=mode)
            os.chmod(created, mode)


def write_temp(path: Path, data: bytes, mode: int = FILE_MODE) -> Path:
    """Write `data` to a new temporary file next to `path`, fsync'd, with `mode`; returns the temporary path.

    The temporary name starts with a dot and ends in `.tmp`, so listings skip it.
    """
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
    except BaseException:
        discard_temp(temp)
        raise
    return temp


def install_temp(temp: Path, path: Path) -> None:
    """Rename `temp` over `path` and make the rename durable."""
    os.replace(temp, path)
    fsync_dir(path.parent)


def discard_temp(temp: Path) -> None:
    """Remove a temporary file that will not be installed (missing is fine)."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE, *, exclusive: bool = False) -> None:
    """Replace `path` with `data` atomically: readers see the old file or the new one, never a part.

    With `exclusive`, an existing `path` is never replaced: FileExistsError instead (the check and the
    creation are one step, a hard link, so two writers cannot both win).
    """
    make_dirs(path.parent)
    temp = write_temp(path, data, mode)
    try:
        if not exclusive:
            install_temp(temp, path)
            return
        try:
            os.link(temp, path)
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links: create exclusively, then write in place
            _write_exclusive(path, data, mode)
        fsync_dir(path.parent)
    finally:
        discard_temp(temp)


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


# --------------------------------------------------------------------------------------------- the store


def _check_relpath(relpath: str) -> PurePosixPath:
    parts = PurePosixPath(relpath).parts
    bad = (
        not relpath
        or "\\" in relpath
        or "\0" in relpath
        or relpath.startswith("/")
        or any(part in (".", "..") or part.startswith(TEMP_PREFIX) for part in parts)
    )
    if bad:
        raise ValueError(f"state entry {relpath!r}: use a relative path like 'oauth/NAME' (no '..', no leading '.')")
    return PurePosixPath(*parts)


class StateStore:
    """age-encrypted entries under `state_dir`, addressed by relative names such as `oauth/linear/tokens`.

    The file of entry `name` is `state_dir/name.age`, a standard age file that `age -d -i KEYFILE` opens.
    A corrupted or undecryptable entry is logged (naming the file) and read as absent.
    """

    def __init__(self, state_dir: Path, identity: Identity, extra_recipients: list[str]) -> None:
        if identity is None:
            raise SecretError("state files need the gateway's age key; set MCP_GATEWAY_AGE_KEY or "
                              "MCP_GATEWAY_AGE_KEY_FILE")
        for recipient in extra_recipients:
            parse_recipient(recipient)
        self.state_dir = Path(state_dir)
        self._identity = identity
        self.recipients: list[str] = list(dict.fromkeys([identity.recipient, *extra_recipients]))

    def __repr__(self) -> str:
        return f"StateStore({str(self.state_dir)!r}, {len(self.recipients)} recipients)"

    def path_of(self, relpath: str) -> Path:
        """The file that holds entry `relpath`."""
        clean = _check_relpath(relpath)
        return self.state_dir.joinpath(*clean.parts[:-1], clean.name + SECRET_SUFFIX)

    def write(self, relpath: str, data: bytes) -> None:
        """Encrypt `data` to the recipients and replace the entry atomically (0600, folders 0700)."""
        path = self.path_of(relpath)
        make_dirs(self.state_dir)
        atomic_write(path, encrypt_to(self.recipients, data))

    def read(self, relpath: str) -> bytes | None:
        """The entry's bytes, or None when it is absent or cannot be decrypted (logged as a warning)."""
        path = self.path_of(relpath)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("state file %s cannot be read (%s); treating it as absent", path, type(exc).__name__)
            return None
        try:
            return self._identity.decrypt(data)
        except Exception as exc:  # pyrage.DecryptError, and anything else a damaged file provokes
            logger.warning("state file %s cannot be decrypted (%s); treating it as absent", path, exc)
            return None

    def delete(self, relpath: str) -> bool:
        """Remove the entry; True if it existed."""
        path = self.path_of(relpath)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    def list(self, prefix: str = "") -> list[str]:
        """Names of the entries whose name starts with `prefix` (e.g. `oauth/`), sorted."""
        if not self.state_dir.is_dir():
            return []
        names = []
        for path in self.state_dir.rglob(f"*{SECRET_SUFFIX}"):
            relative = path.relative_to(self.state_dir)
            if not path.is_file() or any(part.startswith(TEMP_PREFIX) for part in relative.parts):
                continue
            name = relative.as_posix()[: -len(SECRET_SUFFIX)]
            if name.startswith(prefix):
                names.append(name)
        return sorted(names)

    def write_json(self, relpath: str, value: Any) -> None:
        """Store `value` as JSON (UTF-8)."""
        self.write(relpath, json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8"))

    def read_json(self, relpath: str) -> Any | None:
        """The JSON value of the entry, or None when it is absent, undecryptable or not JSON (logged)."""
        data = self.read(relpath)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            logger.warning("state file %s does not hold JSON; treating it as absent", self.path_of(relpath))
            return None
