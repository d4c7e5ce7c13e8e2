"""`keygen`, `secret set NAME`, `secret list` and `secret rotate`.

`secret set` needs only the public recipients from gateway.yaml, never a private key, so anyone with the
repository can add a secret. `secret rotate` needs the key: it decrypts everything first and replaces files
only when every one of them could be re-encrypted, so a failure leaves the repository as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from local_mcp_gateway.commands import add_config_option, reporting
from local_mcp_gateway.config.gateway_models import GatewayConfig
from local_mcp_gateway.config.issues import validation_issues
from local_mcp_gateway.config.load import PROFILE_SUFFIXES, STATE_DIR_ENV
from local_mcp_gateway.config.models import ProfileConfig
from local_mcp_gateway.config.yamlsafe import load_yaml
from local_mcp_gateway.errors import ConfigError, SecretError
from local_mcp_gateway.secret_refs import secret_references
from local_mcp_gateway.secrets import (
    KEY_ENV,
    KEY_FILE_ENV,
    SECRET_SUFFIX,
    Identity,
    check_secret_name,
    encrypt_to,
    is_armored,
    load_identity,
    strip_final_newline,
)
from local_mcp_gateway.settings import EnvSettings
from local_mcp_gateway.state import (
    FILE_MODE,
    atomic_write,
    discard_temp,
    fsync_dir,
    install_temp,
    make_dirs,
    write_temp,
)

__all__ = ["register"]

SECRETS_DIR_MODE = 0o755
"""Secrets are committed to git encrypted; their folder needs no special protection."""
NO_RECIPIENTS = (
    "no recipients configured: add `secrets: {recipients: [age1...]}` to {config} "
    "(run `local-mcp-gateway keygen` to make a key and get its recipient)"
)

BaseModelT = TypeVar("BaseModelT", bound=BaseModel)




def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What the secret commands need of the configuration, read leniently.

    Unlike the full loader, this does not insist that referenced secret files exist or that `${env:}`
    variables are set: `secret set` is how a missing secret gets created, and `secret list` reports it.
    `profiles` maps each profile's slug to its validated `ProfileConfig` (empty when not asked for).
    """

    config_path: Path
    gateway: GatewayConfig
    secrets_dir: Path
    state_dir: Path
    profiles: Mapping[str, ProfileConfig]


def _validated(file: Path, model: type[BaseModelT]) -> BaseModelT:
    doc = load_yaml(file)
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, doc, model)) from None


def _folder(root: Path, value: str) -> Path:
    return Path(os.path.normpath(root / os.path.expanduser(value)))


def read_config(args: argparse.Namespace, with_profiles: bool = False) -> ConfigView:
    """gateway.yaml named by -c/--config, $MCP_GATEWAY_CONFIG or ./gateway.yaml (and its profiles if asked)."""
    config_path = Path(os.path.abspath(EnvSettings().config_path(args.config)))
    gateway = _validated(config_path, GatewayConfig)
    root = config_path.parent
    profiles: dict[str, ProfileConfig] = {}
    profiles_dir = _folder(root, gateway.profiles_dir)
    if with_profiles and profiles_dir.is_dir():
        issues = []
        for file in sorted(profiles_dir.iterdir()):
            if file.suffix in PROFILE_SUFFIXES and not file.name.startswith(".") and file.is_file():
                try:
                    profiles[file.stem] = _validated(file, ProfileConfig)
                except ConfigError as exc:
                    issues.extend(exc.issues)
        if issues:
            raise ConfigError(issues)
    state_dir = os.environ.get(STATE_DIR_ENV)  # the same override the gateway honours (config/load.py)
    state = Path(os.path.abspath(os.path.expanduser(state_dir))) if state_dir else _folder(root, gateway.state_dir)
    return ConfigView(config_path, gateway, _folder(root, gateway.secrets_dir), state, MappingProxyType(profiles))


# --------------------------------------------------------------------------------------------- keygen


def identity_file_text(identity: Identity, now: datetime | None = None) -> str:
    """An identity in the age tool's format: `# created:` and `# public key:` comments, then the key."""
    created = (now or datetime.now().astimezone()).replace(microsecond=0).isoformat()
    return f"# created: {created}\n# public key: {identity.recipient}\n{identity.reveal()}\n"


@reporting
def run_keygen(args: argparse.Namespace) -> int:
    identity = Identity.generate()
    text = identity_file_text(identity)
    if args.out is None:
        sys.stdout.write(text)
        print(f"Public key: {identity.recipient}", file=sys.stderr)
        return 0
    out = Path(args.out)
    try:
        atomic_write(out, text.encode("utf-8"), FILE_MODE, exclusive=True)
    except FileExistsError:
        raise SecretError(f"{out} already exists; refusing to overwrite a key (choose another --out)") from None
    print(identity.recipient)
    print(f"wrote {out} (mode 0600); add the recipient above to `secrets.recipients` in gateway.yaml and point "
          f"{KEY_FILE_ENV} at the file", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------- secret set


def _read_value() -> str:
    if sys.stdin is None:
        raise SecretError("no standard input; pipe the value in: printf %s VALUE | local-mcp-gateway secret set NAME")
    if sys.stdin.isatty():
        return _read_from_terminal()
    raw = sys.stdin.buffer.read()
    try:
        value = strip_final_newline(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SecretError("the value on standard input is not UTF-8 text") from None
    if not value:
        raise SecretError("empty value on standard input; pipe it in: printf %s VALUE | local-mcp-gateway secret set "
                          "NAME")
    return value


def _read_from_terminal() -> str:
    """One line typed at the terminal, not echoed (like `getpass`, but on stdin itself, whatever /dev/tty is)."""
    import termios

    fd = sys.stdin.fileno()
    before = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ECHONL)
    print("value (not shown, Enter to finish): ", end="", file=sys.stderr, flush=True)
    try:
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        line = sys.stdin.buffer.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, before)
        print(file=sys.stderr, flush=True)
    try:
        value = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretError("the value typed is not UTF-8 text") from None
    if not value:
        raise SecretError("empty value; type it at the prompt, or pipe it in: printf %s VALUE | local-mcp-gateway "
                          "secret set NAME")
    return value


@reporting
def run_set(args: argparse.Namespace) -> int:
    name = check_secret_name(args.name)
    view = read_config(args)
    recipients = list(view.gateway.secrets.recipients)
    if not recipients:
        raise SecretError(NO_RECIPIENTS.replace("{config}", str(view.config_path)))
    encrypt_to(recipients, b"")  # validates the recipients before anything is read
    value = _read_value()
    secrets_dir = view.secrets_dir
    make_dirs(secrets_dir, SECRETS_DIR_MODE)
    path = secrets_dir / f"{name}{SECRET_SUFFIX}"
    atomic_write(path, encrypt_to(recipients, value.encode("utf-8")), FILE_MODE)
    print(f"wrote {path} (encrypted to {_count(len(set(recipients)), 'recipient')})")
    return 0


# --------------------------------------------------------------------------------------------- secret list


def _secret_files(secrets_dir: Path) -> dict[str, Path]:
    if not secrets_dir.is_dir():
        return {}
    return {
        path.name[: -len(SECRET_SUFFIX)]: path
        for path in sorted(secrets_dir.glob(f"*{SECRET_SUFFIX}"))
        if path.is_file() and not path.name.startswith(".")
    }


@reporting
def run_list(args: argparse.Namespace) -> int:
    view = read_config(args, with_profiles=True)
    secrets_dir = view.secrets_dir
    files = _secret_files(secrets_dir)
    uses: dict[str, list[str]] = {}
    for ref in secret_references(view):
        uses.setdefault(ref.name, []).append(ref.where)
    names = sorted(set(files) | set(uses))
    if not names:
        print(f"no secrets: {secrets_dir} holds no *.age files and nothing references ${{secret:...}}")
        return 0
    width = max(len(name) for name in names)
    missing = [name for name in names if name not in files]
    unused = [name for name in names if name not in uses]
    for name in names:
        status = "MISSING" if name in missing else "UNUSED" if name in unused else "ok"
        where = "; ".join(uses.get(name, [])) or "-"
        print(f"{name:<{width}}  {status:<7}  {where}")
    print(f"{len(names)} secrets in {secrets_dir}: {len(missing)} missing, {len(unused)} unused")
    for name in missing:
        print(f"error: {secrets_dir / (name + SECRET_SUFFIX)} does not exist; create it with "
              f"`local-mcp-gateway secret set {name}`", file=sys.stderr)
    return 1 if missing else 0


# --------------------------------------------------------------------------------------------- secret rotate


@dataclass(slots=True)
class _Job:
    """One file to re-encrypt: its current ciphertext, plaintext, recipients, and the temporary new file."""

    path: Path
    recipients: list[str]
    old: bytes = b""
    plain: bytes = b""
    temp: Path | None = None


def _state_files(state_dir: Path) -> list[Path]:
    if not state_dir.is_dir():
        return []
    return sorted(
        path for path in state_dir.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(state_dir).parts)
    )


def _decrypt_all(jobs: list[_Job], identity: Identity) -> None:
    problems = []
    for job in jobs:
        try:
            job.old = job.path.read_bytes()
            job.plain = identity.decrypt(job.old)
        except OSError as exc:
            problems.append(f"cannot read {job.path} ({exc.strerror or type(exc).__name__})")
        except Exception as exc:  # pyrage.DecryptError: not for this key, truncated or corrupted
            reason = "is not encrypted to this key" if "no matching keys" in str(exc).lower() else f"cannot be " \
                f"decrypted ({exc})"
            problems.append(f"{job.path} {reason}")
    if problems:
        raise SecretError("secret rotate changed nothing:\n" + "\n".join(problems))


def _swap_all(jobs: list[_Job]) -> None:
    """Write every new file as a temporary, then rename them all; on failure, put the old files back."""
    installed: list[_Job] = []
    try:
        for job in jobs:
            job.temp = write_temp(job.path, encrypt_to(job.recipients, job.plain, armored=is_armored(job.old)))
        for job in jobs:
            assert job.temp is not None
            install_temp(job.temp, job.path)
            job.temp = None
            installed.append(job)
    except BaseException:
        for job in installed:
            atomic_write(job.path, job.old, FILE_MODE)
        raise
    finally:
        for job in jobs:
            if job.temp is not None:
                discard_temp(job.temp)
        for folder in {job.path.parent for job in jobs}:
            fsync_dir(folder)


@reporting
def run_rotate(args: argparse.Namespace) -> int:
    view = read_config(args)
    identity = load_identity(EnvSettings())
    if identity is None:
        raise SecretError(f"secret rotate decrypts every secret and state file; set {KEY_ENV} or {KEY_FILE_ENV}")
    recipients = list(view.gateway.secrets.recipients)
    if not recipients:
        raise SecretError(NO_RECIPIENTS.replace("{config}", str(view.config_path)))
    state_recipients = list(dict.fromkeys([identity.recipient, *recipients]))
    secret_jobs = [_Job(path, recipients) for path in _secret_files(view.secrets_dir).values()]
    state_jobs = [_Job(path, state_recipients) for path in _state_files(view.state_dir)]
    jobs = secret_jobs + state_jobs
    _decrypt_all(jobs, identity)
    _swap_all(jobs)
    print(f"re-encrypted {_count(len(secret_jobs), 'secret file')} to {_count(len(set(recipients)), 'recipient')} "
          f"and {_count(len(state_jobs), 'state file')} to {_count(len(state_recipients), 'recipient')}")
    if identity.recipient not in recipients and secret_jobs:
        print(f"note: the current key ({identity.recipient}) is not in secrets.recipients; from now on only the "
              "listed recipients' keys can decrypt the secrets", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------- wiring


def register(subparsers: Any) -> None:
    """Add `keygen` and `secret set|list|rotate` to the command line."""
    keygen = subparsers.add_parser(
        "keygen", help="make a new age identity and print its age1... recipient",
        description="Make a new age X25519 identity. With --out it is written to FILE (mode 0600, never "
                    "overwriting) and the recipient is printed; without, the identity is printed in the age tool's "
                    "format.",
    )
    keygen.add_argument("--out", metavar="FILE", help="write the identity here (mode 0600) instead of printing it")
    add_config_option(keygen, metavar="PATH")
    keygen.set_defaults(handler=run_keygen)

    secret = subparsers.add_parser("secret", help="add, list and re-encrypt secrets/*.age",
                                   description="Manage the age-encrypted secrets referenced as ${secret:NAME}.")
    actions = secret.add_subparsers(dest="secret_command", metavar="ACTION", required=True)

    set_ = actions.add_parser("set", help="encrypt a value from stdin to secrets/NAME.age",
                              description="Read a value from standard input (one final newline is dropped) and "
                                          "write secrets/NAME.age encrypted to secrets.recipients. No key needed.")
    set_.add_argument("name", metavar="NAME")
    add_config_option(set_, metavar="PATH")
    set_.set_defaults(handler=run_set)

    list_ = actions.add_parser("list", help="show secrets, where they are used, and which are missing or unused",
                               description="List secrets/*.age and the ${secret:NAME} references; exit 1 when a "
                                           "referenced secret is missing.")
    add_config_option(list_, metavar="PATH")
    list_.set_defaults(handler=run_list)

    rotate = actions.add_parser("rotate", help="re-encrypt every secret and state file to the current recipients",
                                description="With the key (MCP_GATEWAY_AGE_KEY or MCP_GATEWAY_AGE_KEY_FILE), "
                                            "re-encrypt secrets/*.age to secrets.recipients and state/ to the key "
                                            "plus secrets.recipients. All or nothing.")
    add_config_option(rotate, metavar="PATH")
    rotate.set_defaults(handler=run_rotate)
