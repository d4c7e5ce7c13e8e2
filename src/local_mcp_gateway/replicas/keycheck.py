"""One age key for every replica sharing `state/`: a key-check file that a replica with another key cannot open.

Replicas that share a state folder must hold the same age key (or keys listed as recipients of the state): state
files are encrypted to it, and the 2026-07-28 request state each replica seals is derived from it. A replica
started with another key would otherwise run, fail to read every token, and ask for logins again. So the first
replica seals `state/key-check.age` (a standard age file, encrypted like every state file to the gateway's key plus
`secrets.recipients`); every replica opens it at startup and on reload, and one that cannot refuses to start,
naming the file and its own public key. `secret rotate` re-encrypts the file with the other state files, so a
key roll (add the new recipient, rotate, switch keys) passes the check.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.secrets import Identity, encrypt_to
from local_mcp_gateway.state import atomic_write

__all__ = ["KEY_CHECK_FILE", "check_key"]

logger = logging.getLogger(__name__)

KEY_CHECK_FILE = "key-check.age"


def check_key(state_dir: Path, identity: Identity, recipients: list[str]) -> None:
    """Raise `SecretError` when `state_dir` was sealed for other keys than `identity`; seal it when it was not.

    `recipients` are the state's recipients besides the gateway's own key (`secrets.recipients`). A state folder
    that cannot be read or written right now (a shared volume that is away) is logged and not checked.
    """
    path = Path(state_dir) / KEY_CHECK_FILE
    wanted = sorted(set([identity.recipient, *recipients]))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        logger.warning("cannot read %s (%s); the age key is not checked against the shared state", path,
                       type(exc).__name__)
        return
    if data is None:
        try:
            atomic_write(path, _sealed(wanted), exclusive=True)
            logger.info("sealed %s for this gateway's age key (%s)", path, identity.recipient)
            return
        except FileExistsError:  # another replica sealed it at the same moment: check theirs
            data = path.read_bytes()
        except OSError as exc:
            logger.warning("cannot write %s (%s); the age key is not checked against the shared state", path,
                           type(exc).__name__)
            return
    try:
        content = json.loads(identity.decrypt(data))
    except Exception:  # pyrage.DecryptError (another key), or a damaged file
        raise SecretError(
            f"{path}: this gateway's age key ({identity.recipient}) cannot open the key check that the gateways "
            f"sharing {state_dir} sealed: they use a different age key. Give every replica the same key "
            "(MCP_GATEWAY_AGE_KEY_FILE from one Secret); to roll to a new key, add its recipient to "
            "secrets.recipients and run `local-mcp-gateway secret rotate` with the old key first; if no gateway "
            f"uses the old key any more, delete {path}"
        ) from None
    sealed_for = sorted(content.get("recipients", [])) if isinstance(content, dict) else []
    if sealed_for != wanted:
        try:
            atomic_write(path, _sealed(wanted))
            logger.info("re-sealed %s for %d recipients (secrets.recipients changed)", path, len(wanted))
        except OSError as exc:
            logger.warning("cannot re-seal %s (%s)", path, type(exc).__name__)


def _sealed(recipients: list[str]) -> bytes:
    return encrypt_to(recipients, json.dumps({"recipients": recipients}).encode(), armored=True)
