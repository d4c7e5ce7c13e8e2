"""The gateway at run time: configuration generations, the served profiles, status, and serving over HTTP.

Load, then validate, then build, then swap: a generation (snapshot + resolved servers) is built completely
before it becomes current. `serve()` runs the profiles and Hypercorn in one task group and stops them cleanly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp.server.transport_security import TransportSecuritySettings

from local_mcp_gateway import observability
from local_mcp_gateway.app import GatewayASGI, create_app
from local_mcp_gateway.config.commands import check_resolved_commands
from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.resolve import resolve_profile
from local_mcp_gateway.config.snapshot import Snapshot
from local_mcp_gateway.errors import ConfigError, GatewayError
from local_mcp_gateway.gitops.status import gitops_state, lock_keys, lock_status
from local_mcp_gateway.identity import Authenticator, audit_log_for, authenticator_settings, resource_settings
from local_mcp_gateway.mrtr import state_key_from_identity
from local_mcp_gateway.oauth import manager_for, public_url_for
from local_mcp_gateway.profile import Profile, ProfileOptions
from local_mcp_gateway.redact import RedactedText
from local_mcp_gateway.reload import (
    QUIET_PERIOD_MS,
    ConfigWatchFilter,
    module_source,
    module_stamp,
    settled_changes,
    tree_stamp,
    watch_key,
)
from local_mcp_gateway.replicas.gitsync import symlinks_on
from local_mcp_gateway.replicas.keycheck import check_key
from local_mcp_gateway.secrets import SecretStore, require_identity
from local_mcp_gateway.security import InboundGuard, apply_server_limits, install_accept_error_filter
from local_mcp_gateway.settings import EnvSettings

__all__ = ["Gateway", "Generation", "build_generation", "serve"]

logger = logging.getLogger(__name__)

STARTUP_SETTLE = 30.0
"""Longest wait at startup for upstreams to come up before the gateway reports ready anyway."""

SHUTDOWN_GRACE = 10.0
"""Seconds Hypercorn gives open requests to finish on SIGINT/SIGTERM."""

CONSISTENT_LOAD_TRIES = 5
"""Loads retried when the files changed while being read, before the last load is taken as it is."""



@dataclass(frozen=True)
class Generation:
    """One loaded and resolved configuration: everything needed to build the profiles."""

    number: int
    snapshot: Snapshot
    servers: Mapping[str, tuple[Any, ...]]
    api_keys: Mapping[str, tuple[str, ...]]
    """Per profile: the inbound keys accepted there (gateway-wide keys plus the profile's own), decrypted."""
    secrets: SecretStore
    loaded_at: str
    request_state_keys: list[bytes] | None = None
    """Keys for 2026-07-28 request state, derived from the age key (None without one: per-process keys)."""
    module_stamps: Mapping[str, str | None] = field(default_factory=dict)
    """Per in-process server module: a fingerprint of its source, so an edited module restarts its servers."""
    locks: Mapping[str, Any] = field(default_factory=dict)
    """Per profile with a lock policy other than `off`: its `gitops.enforce.LockGuard`."""
    source: Mapping[str, Any] | None = None
    """Where the configuration came from in git (see `gitops.source.config_commit`), None outside git."""

    @property
    def commit(self) -> str | None:
        """The git commit the configuration folder holds (a repository, worktree or git-sync revision), if known."""
        return self.source["commit"] if self.source else None
    public_url: str = ""
    """The URL clients reach the gateway at (`public_url`, else from the listen address): profiles' resource URLs."""


def build_generation(config_path: Path, settings: EnvSettings, number: int) -> Generation:
    """Load, validate and resolve the configuration (secrets decrypted); raise `GatewayError` if anything fails.

    The configuration is read from the folder `config_path` resolves to, so a symlink swapped meanwhile
    (git-sync) cannot mix two revisions. With a key, the shared state folder is checked for the same key.
    """
    snapshot = load_snapshot(Path(os.path.realpath(config_path)), environ=os.environ)
    identity = require_identity(settings, snapshot)
    if identity is not None:
        check_key(snapshot.state_dir, identity, list(snapshot.gateway.secrets.recipients))
    store = SecretStore(snapshot.secrets_dir, identity)
    servers = {
        slug: resolve_profile(spec, secret=store.reveal_lookup, env=os.environ)
        for slug, spec in snapshot.profiles.items()
    }
    check_resolved_commands(servers, snapshot.gateway.security.allowed_commands)  # the programs that will run

    def render(templates: Any) -> tuple[str, ...]:
        return tuple(t.render(store.reveal_lookup, os.environ) for t in templates)

    shared_keys = render(snapshot.gateway.security.api_keys)
    api_keys = {slug: shared_keys + render(spec.api_keys) for slug, spec in snapshot.profiles.items()}
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    state_keys = [state_key_from_identity(identity.reveal())] if identity is not None else None
    modules = {server.module for resolved in servers.values() for server in resolved if server.module}
    stamps = {module: module_stamp(module) for module in sorted(modules)}
    locks, source = gitops_state(snapshot)
    public_url = public_url_for(snapshot.gateway, settings)
    for slug in snapshot.profiles:
        resource_settings(snapshot, slug, public_url)  # inbound OAuth settings complete (an issuer), else ConfigError
    return Generation(
        number, snapshot, servers, api_keys, store, loaded_at, state_keys, stamps, locks, source, public_url
    )


def profile_options(generation: Generation) -> ProfileOptions:
    security = generation.snapshot.gateway.security
    return ProfileOptions(
        request_state_keys=generation.request_state_keys,
        module_stamps=dict(generation.module_stamps),
        # Host and Origin are checked by the inbound guard (security/guard.py), which knows the gateway's patterns;
        # the SDK's own check stays off so the two never disagree. It still checks Content-Type.
        security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_bytes=security.max_request_bytes,
        max_sessions=security.max_sessions,
        session_idle_timeout=security.session_idle_seconds,
        max_per_session_upstreams=security.max_per_session_upstreams,
        max_calls_in_flight=security.max_calls_in_flight,
        max_buffered_result_bytes=security.max_buffered_result_bytes,
        traffic=generation.snapshot.gateway.logging.traffic,
    )


class Gateway:
    """The running gateway: the current generation and its profiles."""

    last_reload_error = RedactedText()
    """`{file, line, message, at, count}` of the last failed reload (None after a good one), redacted when stored."""

    def __init__(self, config_path: Path, settings: EnvSettings | None = None, *, watch: bool = True) -> None:
        self.config_path = config_path
        self.settings = settings or EnvSettings()
        self.generation_info: Generation | None = None
        self.profiles: dict[str, Profile] = {}
        self.guards: dict[str, InboundGuard] = {}
        self._guard_settings: dict[str, tuple[Any, ...]] = {}
        self.audit: Any = None
        """The audit log (`logging.audit`, see the `identity` package); None while it is off."""
        self.oauth: Any = None
        """The OAuth client for upstreams with `oauth` settings (see the `oauth` package); None while no server uses it."""
        self.ready = False
        self.last_reload_error = None
        self.watch = watch
        self._tg: TaskGroup | None = None
        self._reload_lock = anyio.Lock()
        self._reload_requested = anyio.Event()
        self._applied = anyio.Event()
        self.stopping = anyio.Event()
        """Set when serving ends (SIGINT/SIGTERM): long-lived responses such as the dashboard's events end then,
        new requests get 503, and the MCP sessions' GET streams are ended."""

    @property
    def generation(self) -> int:
        return self.generation_info.number if self.generation_info else 0

    @property
    def default_profile(self) -> str | None:
        return self.generation_info.snapshot.gateway.default_profile if self.generation_info else None

    def load_first(self) -> Generation:
        """Build generation 1; raises `GatewayError` (the caller reports it and exits 1)."""
        generation = build_generation(self.config_path, self.settings, 1)
        self.generation_info = generation
        return generation

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the current generation's profiles, and follow configuration changes, until cancelled."""
        generation = self.generation_info or self.load_first()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._apply(generation)
            with anyio.move_on_after(STARTUP_SETTLE):
                for profile in list(self.profiles.values()):
                    await profile.wait_settled(STARTUP_SETTLE)
            self.ready = True
            task_status.started()
            if self.watch:
                tg.start_soon(self._watch)
            try:
                while True:
                    await self._reload_requested.wait()
                    self._reload_requested = anyio.Event()
                    await self.reload()
            finally:
                self.ready = False
                for profile in self.profiles.values():
                    profile.stop()

    def request_reload(self) -> None:
        """Ask for a reload (SIGHUP, the file watcher); requests made while one runs fold into the next."""
        self._reload_requested.set()

    async def reload(self) -> bool:
        """Load the configuration again and apply it; on any error keep serving the current generation."""
        async with self._reload_lock:
            number = self.generation + 1
            try:
                generation = await anyio.to_thread.run_sync(self._load_consistent, number)
                if self._unchanged(generation):
                    logger.info("reload: nothing changed")
                    assert self.generation_info is not None
                    self.generation_info = dataclasses.replace(self.generation_info, source=generation.source)
                    observability.note_reload("unchanged")
                else:
                    await self._apply(generation)
                    observability.note_reload("applied")
            except GatewayError as exc:
                observability.note_reload("failed")
                self.last_reload_error = _reload_error(exc, self.config_path)
                logger.error("reload failed; generation %d keeps serving: %s", self.generation, exc)
                return False
            self.last_reload_error = None
            # A reload, even of unchanged files, is also the operator's "try again now" for servers that are down.
            retried = sum(profile.retry_now() for profile in self.profiles.values())
            if retried:
                logger.info("reload: retrying %d servers that are down", retried)
            return True

    def _load_consistent(self, number: int) -> Generation:
        """Build a generation from files that did not change while they were read (bounded retries)."""
        for _ in range(CONSISTENT_LOAD_TRIES):
            paths = self._watched_folders()
            before = (watch_key(paths), tree_stamp(paths))
            generation = build_generation(self.config_path, self.settings, number)
            if (watch_key(paths), tree_stamp(paths)) == before:
                return generation
            time.sleep(QUIET_PERIOD_MS / 1000)
        return generation

    def _unchanged(self, generation: Generation) -> bool:
        current = self.generation_info
        if current is None or current.snapshot.digest != generation.snapshot.digest:
            return False
        if current.api_keys != generation.api_keys or current.module_stamps != generation.module_stamps:
            return False
        if lock_keys(current.locks) != lock_keys(generation.locks):
            return False
        return all(
            [s.fingerprint for s in current.servers.get(slug, ())] == [s.fingerprint for s in servers]
            for slug, servers in generation.servers.items()
        )

    async def _apply(self, generation: Generation) -> None:
        """Make `generation` current: new profiles start, changed ones update in place, removed ones stop."""
        assert self._tg is not None
        snapshot = generation.snapshot
        base_options = profile_options(generation)
        self.oauth = manager_for(snapshot, self.settings, self.oauth)  # first: it may raise before anything changed
        self.audit = audit_log_for(snapshot, self.audit)
        for slug, servers in generation.servers.items():
            spec = snapshot.profiles[slug]
            options = dataclasses.replace(base_options, lock=generation.locks.get(slug))
            keys = generation.api_keys[slug]
            identity = authenticator_settings(snapshot, slug, keys, generation.public_url, self.audit)
            settings = (snapshot.gateway.security, keys, identity)
            if self._guard_settings.get(slug) != settings:
                # A new guard only when its settings changed: rate-limit buckets and cached signing keys survive
                # other reloads.
                self.guards[slug] = InboundGuard(*settings[:2], slug, authenticator=Authenticator(*identity))
                self._guard_settings[slug] = settings
            if slug in self.profiles:
                self.profiles[slug].apply(servers, options, description=spec.description)
            else:
                profile = Profile(slug, servers, options, description=spec.description, auth=self._auth_for)
                await self._tg.start(profile.run)
                self.profiles[slug] = profile
        for slug in [slug for slug in self.profiles if slug not in generation.servers]:
            profile = self.profiles.pop(slug)
            self.guards.pop(slug, None)
            self._guard_settings.pop(slug, None)
            profile.stop()
            logger.info("profile %s removed", slug)
        self.generation_info = generation
        self._applied.set()
        self._applied = anyio.Event()
        logger.info(
            "generation %d serving %d profiles: %s",
            generation.number,
            len(self.profiles),
            ", ".join(sorted(self.profiles)) or "none",
        )

    def _auth_for(self, upstream: Any) -> Any:
        """The `httpx2.Auth` for an upstream with `oauth` settings, from the gateway's OAuth client."""
        if upstream.server.oauth is None or self.oauth is None:
            return None
        return self.oauth.auth_for(upstream)

    def _watched_folders(self) -> list[Path]:
        """The configuration folders where the config path resolves to now (a swapped symlink moves them)."""
        root = Path(os.path.realpath(self.config_path)).parent
        info = self.generation_info
        if info is None:
            return [root]
        folders = [root]
        for folder in (info.snapshot.profiles_dir, info.snapshot.secrets_dir):
            try:  # a folder inside the configuration moves with it; one outside stays where it is
                folders.append(root / folder.relative_to(info.snapshot.root))
            except ValueError:
                folders.append(folder)
        return folders

    def _watched_paths(self) -> list[Path]:
        paths = self._watched_folders()
        paths.extend(link.parent for link in symlinks_on(self.config_path))
        info = self.generation_info
        if info is not None:
            for servers in info.servers.values():
                for server in servers:
                    if server.module and (source := module_source(server.module)) is not None:
                        paths.append(source)
        return sorted(set(paths))

    async def _watch(self) -> None:
        """Watch the configuration files; re-aim the watcher when a new generation or a swapped symlink (git-sync)
        changes what is watched."""
        while True:
            paths = self._watched_paths()
            key = watch_key(paths)
            stop = anyio.Event()
            # Let through module sources, the symlinks on the way (a swap) and the folders (created or removed).
            extra = [p for p in paths if p.suffix == ".py"] + symlinks_on(self.config_path) + self._watched_folders()
            async with anyio.create_task_group() as tg:

                async def follow_generations() -> None:
                    while watch_key(self._watched_paths()) == key:
                        await self._applied.wait()
                    stop.set()

                tg.start_soon(follow_generations)
                async for _ in settled_changes(paths, ConfigWatchFilter(extra), stop):
                    self.request_reload()
                    if watch_key(self._watched_paths()) != key:
                        stop.set()  # the link points elsewhere: watch the new revision's folders
                tg.cancel_scope.cancel()
            if not stop.is_set():  # the watcher ended by itself (a folder went away): look again shortly
                await anyio.sleep(QUIET_PERIOD_MS / 1000)

    async def guard(self, profile: Profile, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Inbound checks in front of a profile's MCP endpoint (see the `security` package), then the endpoint itself."""
        await self.guards[profile.slug](scope, receive, send, profile.handle)

    def status(self) -> dict[str, Any]:
        info = self.generation_info
        return {
            "generation": self.generation,
            "config_digest": info.snapshot.digest if info else None,
            "config_commit": info.commit if info else None,
            "config_source": info.source if info else None,
            "loaded_at": info.loaded_at if info else None,
            "last_reload_error": self.last_reload_error,
            "ready": self.ready,
            "default_profile": self.default_profile,
            "oauth": self.oauth.status() if self.oauth is not None else {},
            "profiles": {
                slug: {**profile.status(), "lock": lock_status(profile.options.lock)}
                for slug, profile in sorted(self.profiles.items())
            },
        }


async def serve(
    gateway: Gateway,
    *,
    host: str,
    port: int,
    certfile: str | None = None,
    keyfile: str | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Run the gateway and Hypercorn until `shutdown_trigger` returns (default: SIGINT or SIGTERM).

    The listening socket is bound first: a port in use is a `GatewayError` naming the address before any upstream
    starts. On shutdown new requests get 503, open GET streams are ended (a client holding one would otherwise keep
    Hypercorn waiting for its whole grace period), and requests still in flight get `SHUTDOWN_GRACE` seconds.
    """
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Config
    from hypercorn.utils import wrap_app

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = SHUTDOWN_GRACE
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    if certfile and keyfile:
        config.certfile = certfile
        config.keyfile = keyfile
    if gateway.generation_info is not None:
        apply_server_limits(config, gateway.generation_info.snapshot.gateway.security)
    install_accept_error_filter()
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise GatewayError(f"cannot listen on {host}:{port}: {reason.lower()}; stop what uses it or choose another "
                           "port (listen.port, MCP_GATEWAY_PORT)") from None
    app = GatewayASGI(gateway, create_app(gateway))
    trigger = shutdown_trigger or _signal_trigger(gateway)

    async def stop_when_triggered() -> None:
        await trigger()
        gateway.stopping.set()
        end_open_streams(gateway)

    async with anyio.create_task_group() as tg:
        await tg.start(gateway.run)
        if on_listening is not None:
            scheme = "https" if certfile else "http"
            on_listening(f"{scheme}://{host}:{port}")
        async with observability.metrics_listener():
            await worker_serve(wrap_app(app, config.wsgi_max_body_size, None), config, sockets=sockets,
                               shutdown_trigger=stop_when_triggered)
        tg.cancel_scope.cancel()


def end_open_streams(gateway: Gateway) -> None:
    """End every client's standalone GET stream (the SDK keeps one open per session for server notices)."""
    for profile in list(gateway.profiles.values()):
        sessions = getattr(profile.manager, "_server_instances", {})  # the SDK keeps its sessions private
        for transport in list(sessions.values()):
            try:
                transport.close_standalone_sse_stream()
            except Exception as exc:  # a session ending at the same moment must not stop the shutdown
                logger.debug("could not end a GET stream: %s", exc)


def _reload_error(exc: GatewayError, config_path: Path) -> dict[str, Any]:
    """`last_reload_error` for /status: where and what, never a secret (messages are built without values)."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    if isinstance(exc, ConfigError) and exc.issues:
        issue = exc.issues[0]
        return {"file": str(issue.file), "line": issue.line, "message": str(issue), "at": at, "count": len(exc.issues)}
    return {"file": str(config_path), "line": None, "message": str(exc), "at": at, "count": 1}


def _signal_trigger(gateway: Gateway) -> Callable[[], Awaitable[None]]:
    async def wait_for_stop() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP received: reloading the configuration")
                    gateway.request_reload()
                    continue
                logger.info("%s received: stopping", signal.Signals(signum).name)
                return

    return wait_for_stop
