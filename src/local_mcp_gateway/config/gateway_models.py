"""Pydantic models of `gateway.yaml`'s own settings: listener, secrets, security, logging, metrics, the UI.

`GatewayConfig` is the file's root. The servers it defines and the profile files are modelled in `models.py`.
Field docstrings become the descriptions in `schemas/gateway.schema.json`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from local_mcp_gateway.config.models import (
    AGE_RECIPIENT_PATTERN,
    AuditLogConfig,
    Glob,
    InboundOAuthConfig,
    ServerConfig,
    _Model,
)
from local_mcp_gateway.config.template import Template

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TRAFFIC_ENTRIES",
    "GatewayConfig",
    "ListenConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MetricsListenConfig",
    "RateLimitConfig",
    "SecretsConfig",
    "SecurityConfig",
    "TlsConfig",
    "TrafficLogConfig",
    "UIConfig",
]

DEFAULT_PORT = 8080
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_REQUESTS_PER_MINUTE = 100
DEFAULT_TRAFFIC_ENTRIES = 1000
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_SESSION_IDLE_SECONDS = 30 * 60.0
DEFAULT_MAX_PER_SESSION_UPSTREAMS = 16
DEFAULT_MAX_CALLS_IN_FLIGHT = 64
DEFAULT_INPUT_ROUND_HOLD_SECONDS = 300.0
DEFAULT_MAX_BUFFERED_RESULT_BYTES = 64 * 1024 * 1024


class ListenConfig(_Model):
    """Where the gateway listens."""

    host: str = "127.0.0.1"
    """Address to bind; keep 127.0.0.1 unless the gateway sits behind a proxy."""
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """TCP port (0: any free port)."""


class SecretsConfig(_Model):
    """Who can decrypt `secrets/*.age`."""

    recipients: list[Annotated[str, StringConstraints(pattern=AGE_RECIPIENT_PATTERN)]] = []
    """age public keys (`age1...`) that `secret set` encrypts to; no private key is needed to add a secret."""


class RateLimitConfig(_Model):
    """Requests per client address per profile."""

    requests_per_minute: int = Field(default=DEFAULT_REQUESTS_PER_MINUTE, ge=0)
    """Allowed requests per minute; 0 turns the limit off."""
    include_loopback: bool = False
    """Also limit clients on 127.0.0.1/::1 (local agents are exempt by default)."""


class TlsConfig(_Model):
    """Serve HTTPS directly (both files, or neither)."""

    certfile: str | None = None
    """PEM certificate chain, relative to the folder of gateway.yaml."""
    keyfile: str | None = None
    """PEM private key, relative to the folder of gateway.yaml."""

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsConfig:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("give both certfile and keyfile to serve HTTPS, or neither")
        return self


class SecurityConfig(_Model):
    """Protection of the /mcp endpoints."""

    allowed_hosts: list[Glob] = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    """Host header values accepted on every route, `host:port`: `*` in the port matches digits only (`127.0.0.1:*` is any port, never `127.0.0.1:80.attacker.example`), `*` in the host a run of name characters; nothing else is special, so `[::1]:*` is literal. Others get 421. Guards against DNS rebinding."""
    cors_origins: list[Annotated[str, StringConstraints(pattern=r"^https?://[^/\s]+$")]] = []
    """Exact browser origins (`https://app.example`) allowed cross-origin; empty: no CORS headers."""
    rate_limit: RateLimitConfig = RateLimitConfig()
    """Requests per minute per client address per profile."""
    max_request_bytes: int = Field(default=DEFAULT_MAX_REQUEST_BYTES, gt=0)
    """Largest request body accepted; larger ones get 413."""
    api_keys: list[Template] = []
    """Keys accepted on every profile as `Authorization: Bearer <key>`. Write them as `${secret:NAME}`."""
    allowed_commands: list[Glob] = []
    """If any: the program a stdio command runs must match one: a name glob means the program found for it on the gateway's PATH (a `./bin/uvx` script is not `uvx`), a glob starting with `/` an absolute path."""
    tls: TlsConfig = TlsConfig()
    """Certificate and key to serve HTTPS directly."""
    # -- bounds on what clients can make the gateway hold (each applies to every profile on its own) --
    max_sessions: int = Field(default=DEFAULT_MAX_SESSIONS, ge=1)
    """Most open client sessions per profile; at the cap, opening one closes the idlest session (no request being answered, longest since its last request)."""
    session_idle_seconds: float = Field(default=DEFAULT_SESSION_IDLE_SECONDS, gt=0)
    """A client session with no request (and no open GET stream) for this long is closed, with its per-session upstreams."""
    max_per_session_upstreams: int = Field(default=DEFAULT_MAX_PER_SESSION_UPSTREAMS, ge=1)
    """Most live upstreams of one `isolation: per_session` server per profile; at the cap, the one unused longest (no call in flight) is stopped, and its session's next call starts it again."""
    input_round_hold_seconds: float = Field(default=DEFAULT_INPUT_ROUND_HOLD_SECONDS, gt=0)
    """How long an upstream call that asked a 2026-07-28 client a question (an `input_required` round) is held open for the client's answer. A retry within it continues the call; a retry after it, or on another replica, runs the call again with the answers."""
    max_calls_in_flight: int = Field(default=DEFAULT_MAX_CALLS_IN_FLIGHT, ge=1)
    """Most MCP requests per profile being answered at once (a slow client reading its answer counts until it has read it); past it a request gets an error at once."""
    max_buffered_result_bytes: int = Field(default=DEFAULT_MAX_BUFFERED_RESULT_BYTES, ge=1024)
    """Most bytes of answers per profile waiting to be read by clients; an answer that does not fit gets an error instead, and new requests are refused while the answers held reach it."""
    oauth: InboundOAuthConfig | None = None
    """If set: every profile accepts OAuth access tokens from this issuer; a profile's own `oauth` overrides single fields."""


class TrafficLogConfig(_Model):
    """A redacted in-memory log of MCP requests and responses."""

    enabled: bool = False
    """Record traffic."""
    max_entries: int = Field(default=DEFAULT_TRAFFIC_ENTRIES, ge=1)
    """Entries kept; the oldest are dropped first."""


class LoggingConfig(_Model):
    """The gateway's own log."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe level written."""
    format: Literal["text", "json"] = "text"
    """`text` for people, `json` (one object per line) for log collectors."""
    traffic: TrafficLogConfig = TrafficLogConfig()
    """Redacted MCP traffic log."""
    audit: AuditLogConfig = AuditLogConfig()
    """Audit log of calls: who (token `sub`, or `key:<hash>`), what, where, outcome."""


class MetricsListenConfig(_Model):
    """A listener of its own for `/metrics`."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = Field(ge=0, le=65535)
    """TCP port (0: any free port)."""


class MetricsConfig(_Model):
    """Prometheus metrics at `/metrics` (see docs/observability.md). Read at start: changes need a restart."""

    enabled: bool = True
    """Count and time requests and serve `/metrics`."""
    listen: MetricsListenConfig | None = None
    """Serve `/metrics` on this address only (not on the main listener, and without its guard); default: the main listener, guarded like `/status`."""


class UIConfig(_Model):
    """The read-only dashboard at /ui/ (status, tools, traffic, client setup)."""

    enabled: bool = True
    """Serve /ui/. Its code is loaded on the first request, so a gateway nobody looks at does not pay for it."""
    loopback: bool = True
    """Callers on 127.0.0.1/::1 may open /ui/ without a key. Set false behind a reverse proxy on the same host, where every caller looks local."""
    admin_keys: list[Template] = []
    """Keys that open /ui/ from any address: sent as `Authorization: Bearer <key>`, or typed once into the page's sign-in form (the browser then holds a session cookie, never the key). Write them as `${secret:NAME}`."""


class GatewayConfig(_Model):
    """gateway.yaml: gateway-wide settings and the shared server catalog."""

    version: Literal[1]
    """Format version of this file; currently 1."""
    listen: ListenConfig = ListenConfig()
    """Address and port to serve on."""
    public_url: Annotated[str, StringConstraints(pattern=r"^https?://[^/\s]+(/\S*)?$")] | None = None
    """URL clients and browsers reach the gateway at; default http://{host}:{port}. OAuth redirects go to {public_url}/oauth/callback."""
    profiles_dir: str = "profiles"
    """Folder of profile files, relative to this file's folder."""
    secrets_dir: str = "secrets"
    """Folder of `NAME.age` secrets, relative to this file's folder."""
    state_dir: str = "state"
    """Folder for runtime state (tokens, registrations), relative to this file's folder; keep it out of git."""
    default_profile: str | None = None
    """Profile also served at /mcp."""
    secrets: SecretsConfig = SecretsConfig()
    """Recipients of encrypted secrets."""
    servers: dict[str, ServerConfig] = {}
    """The shared catalog: servers profiles can refer to by key."""
    security: SecurityConfig = SecurityConfig()
    """Host checks, CORS, rate limits, request size, keys, command allow-list, TLS."""
    logging: LoggingConfig = LoggingConfig()
    """Log level and format, and the traffic log."""
    metrics: MetricsConfig = MetricsConfig()
    """Prometheus metrics; traces are configured by the standard `OTEL_*` variables."""
    ui: UIConfig = UIConfig()
    """The read-only dashboard at /ui/ and who may open it."""
