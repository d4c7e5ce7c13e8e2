"""Pydantic models of `gateway.yaml` and `profiles/<slug>.yaml`: the single source of truth.

Field docstrings become the descriptions in the generated JSON Schemas (`schemas/*.json`), which
editors use for completion and CI uses for checks. Unknown keys are errors everywhere. Checks that
need more than one file (catalog references, secret files, names) live in `validate.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from local_mcp_gateway.config.template import Template

__all__ = [
    "AGE_RECIPIENT_PATTERN",
    "AccessRule",
    "AuditLogConfig",
    "InboundOAuthConfig",
    "MODULE_PATTERN",
    "OVERRIDABLE_FIELDS",
    "PREFIX_PATTERN",
    "GatewayConfig",
    "ListenConfig",
    "LockConfig",
    "LoggingConfig",
    "OAuthConfig",
    "ProfileConfig",
    "ProfileServerEntry",
    "RateLimitConfig",
    "SecretsConfig",
    "SecurityConfig",
    "ServerConfig",
    "ServerKind",
    "TlsConfig",
    "ToolOverride",
    "ToolsConfig",
    "TrafficLogConfig",
    "UIConfig",
]

AGE_RECIPIENT_PATTERN = r"^age1[02-9ac-hj-np-z]{58}$"
"""An X25519 age recipient: `age1` and 58 bech32 characters."""

MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
"""`package.module:attribute` (the attribute may be dotted)."""

PREFIX_PATTERN = r"^[A-Za-z0-9_-]{0,52}$"
"""A prefix short enough that `prefix__name` still leaves room for a readable name within 64 characters."""

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_PORT = 8080
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_REQUESTS_PER_MINUTE = 100
DEFAULT_TRAFFIC_ENTRIES = 1000
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_SESSION_IDLE_SECONDS = 30 * 60.0
DEFAULT_MAX_PER_SESSION_UPSTREAMS = 16
DEFAULT_MAX_CALLS_IN_FLIGHT = 64
DEFAULT_MAX_BUFFERED_RESULT_BYTES = 64 * 1024 * 1024
DEFAULT_AUDIT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_AUDIT_BACKUPS = 5

ServerKind = Literal["stdio", "remote", "inprocess"]

OVERRIDABLE_FIELDS = ("prefix", "enabled", "timeout_seconds", "isolation", "tools")
"""What a profile may change on a catalog server it refers to."""

Glob = Annotated[str, StringConstraints(min_length=1)]
Module = Annotated[str, StringConstraints(pattern=MODULE_PATTERN)]
Prefix = Annotated[str, StringConstraints(pattern=PREFIX_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", frozen=True)


class ToolOverride(_Model):
    """How one upstream tool is presented to clients."""

    name: Annotated[str, StringConstraints(min_length=1)] | None = None
    """Name shown to clients instead of the upstream name (the server's prefix is still added)."""
    description: str | None = None
    """Description shown to clients instead of the upstream one."""
    input_schema: dict[str, Any] | None = None
    """JSON Schema of the arguments shown to clients instead of the upstream one."""


class ToolsConfig(_Model):
    """Which upstream tools clients see, and how."""

    include: list[Glob] = ["*"]
    """Globs (fnmatch, case-sensitive) of upstream tool names to expose; default: all."""
    exclude: list[Glob] = []
    """Globs of upstream tool names to hide, applied after `include`."""
    overrides: dict[str, ToolOverride] = {}
    """Per upstream tool name: a new name, description or input schema."""


# -- who is calling: the gateway as an OAuth 2.1 protected resource (see the `identity` package) --------------

HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")]
Scope = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$")]
"""An OAuth scope token (RFC 6749 section 3.3: printable ASCII without space, `"` and `\\`)."""


class InboundOAuthConfig(_Model):
    """Callers present OAuth 2.1 access tokens (signed JWTs) from this authorization server."""

    issuer: HttpsUrl | None = None
    """The authorization server; a token's `iss` must equal it exactly. Required here or in `security.oauth`."""
    jwks_uri: HttpsUrl | None = None
    """Where its signing keys are; default: `jwks_uri` of the issuer's RFC 8414 or OpenID Connect metadata."""
    audience: HttpsUrl | None = None
    """A token's `aud` must contain it; default: the profile's public URL, `{public_url}/mcp/<slug>` (RFC 8707)."""
    required_scopes: list[Scope] | None = None
    """Scopes every token needs (else 403 `insufficient_scope`); default: none, or those of `security.oauth`."""


class AccessRule(_Model):
    """Tools matched by `tools` are listed to, and callable by, only callers whose token has all of `scopes`."""

    tools: list[Glob] = Field(min_length=1)
    """Globs (fnmatch, case-sensitive) of client-visible tool names, e.g. `github__*`."""
    scopes: list[Scope] = Field(min_length=1)
    """A caller needs every one of these scopes to see and call the matched tools."""


class AuditLogConfig(_Model):
    """One JSON line per `tools/call`, `prompts/get` and `resources/read`: who called what, and how it went."""

    file: str | None = None
    """Path of the audit log, relative to the folder of gateway.yaml; unset: no audit log."""
    max_bytes: int = Field(default=DEFAULT_AUDIT_MAX_BYTES, ge=1024)
    """Size at which the file is rotated (`FILE.1`, `FILE.2`, ...)."""
    backups: int = Field(default=DEFAULT_AUDIT_BACKUPS, ge=0)
    """Rotated files kept; the oldest is deleted."""


class IdentityAssertionConfig(_Model):
    """Enterprise-managed authorization (SEP-990): where the gateway exchanges an identity token for an ID-JAG."""

    token_endpoint: str
    """The enterprise identity provider's token endpoint (RFC 8693 token exchange)."""
    client_id: str
    """The gateway's client id at the identity provider."""
    id_token: Template
    """The identity token to exchange; write it as `${secret:NAME}`."""
    client_secret: Template | None = None
    """The gateway's client secret at the identity provider, if it has one; `${secret:NAME}`."""


class OAuthConfig(_Model):
    """The gateway acts as an OAuth 2.1 client for this remote server (discovery, PKCE, refresh)."""

    grant: Literal["authorization_code", "client_credentials", "jwt_bearer"] = "authorization_code"
    """`authorization_code`: a person logs in once (PKCE); `client_credentials`: the gateway authenticates as
    itself, no person involved; `jwt_bearer`: enterprise-managed authorization, an identity assertion
    (`identity_assertion`) exchanged for an ID-JAG, then for tokens (RFC 8693 + RFC 7523)."""
    scopes: list[str] = []
    """Scopes to request; empty: what the server's metadata or 401 asks for."""
    client_id: str | None = None
    """A pre-registered client id; without one the gateway uses `client_metadata_url` where the authorization
    server supports it, else registers itself dynamically (RFC 7591)."""
    client_secret: Template | None = None
    """Secret of a pre-registered confidential client; write it as `${secret:NAME}`."""
    client_name: str | None = None
    """Name shown on the authorization server's consent page when registering dynamically."""
    client_metadata_url: str | None = None
    """An `https://` URL where the gateway's client metadata document is published (Client ID Metadata
    Document); used as the client id when the authorization server advertises support for it."""
    token_endpoint_auth_method: Literal["none", "client_secret_post", "client_secret_basic", "private_key_jwt"] | None = None
    """How the gateway authenticates at the token endpoint; default: `client_secret_basic` with a secret,
    `private_key_jwt` with a `private_key`, else `none`."""
    private_key: Template | None = None
    """PEM private key for `private_key_jwt` client authentication; write it as `${secret:NAME}`."""
    signing_algorithm: Literal["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA"] = "ES256"
    """JWS algorithm of the `private_key_jwt` assertion (asymmetric only)."""
    issuer: str | None = None
    """For `jwt_bearer`: the authorization server's issuer; default: the first one the server's protected
    resource metadata names."""
    identity_assertion: IdentityAssertionConfig | None = None
    """For `jwt_bearer`: the enterprise identity provider and the identity token to exchange."""

    @model_validator(mode="after")
    def _grant_needs(self) -> OAuthConfig:
        method = self.token_endpoint_auth_method
        if method == "private_key_jwt" and self.private_key is None:
            raise ValueError("token_endpoint_auth_method private_key_jwt needs private_key: ${secret:NAME}")
        if self.private_key is not None and self.grant != "client_credentials":
            raise ValueError("private_key (private_key_jwt) is used with grant: client_credentials only")
        if method in ("client_secret_basic", "client_secret_post") and self.client_secret is None:
            raise ValueError(f"token_endpoint_auth_method {method} needs client_secret: ${{secret:NAME}}")
        if self.grant == "client_credentials":
            if not self.client_id:
                raise ValueError("grant client_credentials needs client_id (a client registered for the gateway)")
            if self.client_secret is None and self.private_key is None:
                raise ValueError("grant client_credentials needs client_secret or private_key (as ${secret:NAME})")
        if self.grant == "jwt_bearer":
            if not self.client_id or self.identity_assertion is None:
                raise ValueError("grant jwt_bearer needs client_id and identity_assertion")
        elif self.identity_assertion is not None:
            raise ValueError("identity_assertion is only used with grant: jwt_bearer")
        return self


class _ServerFields(_Model):
    command: Template | None = None
    """stdio: the program to start (looked up on PATH), e.g. `npx` or `python`."""
    args: list[Template] = []
    """stdio: its arguments."""
    env: dict[str, Template] = {}
    """stdio: environment variables for the child, added to a small allow-list (PATH, HOME, ...); the gateway's own environment is never passed on."""
    cwd: str | None = None
    """stdio: working directory, relative to the folder of gateway.yaml."""
    url: Template | None = None
    """remote: the server's MCP endpoint, `https://...`."""
    transport: Literal["streamable-http", "sse"] = "streamable-http"
    """remote: `streamable-http` (current) or `sse` (legacy HTTP+SSE)."""
    headers: dict[str, Template] = {}
    """remote: HTTP headers sent with every request, e.g. `Authorization: "Bearer ${secret:token}"`."""
    oauth: OAuthConfig | None = None
    """remote: log in with OAuth (see `local-mcp-gateway auth login SERVER`)."""
    module: Module | None = None
    """in-process: `package.module:attribute`, an MCP server object of the `mcp` SDK loaded into the gateway (trusted code only)."""
    description: str | None = None
    """Shown in /status and exports."""
    enabled: bool = True
    """`false` keeps the server in the configuration but does not start it."""
    prefix: Prefix | None = None
    """Namespace of tool and prompt names (`prefix__name`); default: the server's key; `""`: no prefix."""
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)
    """Longest time one request to this server may take."""
    isolation: Literal["shared", "per_session"] = "shared"
    """`shared`: one upstream connection for all clients; `per_session`: one per client session."""
    protocol: Literal["auto", "handshake", "modern"] = "auto"
    """Protocol line towards this server. `auto`: mirror each client, towards a server that speaks both lines (2026-07-28 clients over a 2026-07-28 connection, session clients over a handshake connection, opened on first use); a server that does not answer `server/discover` gets the handshake line for everyone. `handshake`: always `initialize`. `modern`: always 2026-07-28 (a server that does not answer `server/discover` fails to start)."""
    tools: ToolsConfig = ToolsConfig()
    """Which tools clients see, and overrides of their names, descriptions and schemas."""
    coerce_arguments: bool = True
    """Convert string arguments to the number, boolean, array or object the tool's schema asks for."""

    def _given_kinds(self) -> list[str]:
        return [key for key in ("command", "url", "module") if getattr(self, key) is not None]

    @property
    def kind(self) -> ServerKind:
        """`stdio` (command), `remote` (url) or `inprocess` (module)."""
        if self.command is not None:
            return "stdio"
        if self.url is not None:
            return "remote"
        return "inprocess"


class ServerConfig(_ServerFields):
    """One MCP server: exactly one of `command` (stdio), `url` (remote) or `module` (in-process)."""

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ServerConfig:
        given = self._given_kinds()
        if not given:
            raise ValueError("a server needs one of command (stdio), url (remote) or module (in-process)")
        if len(given) > 1:
            raise ValueError(f"a server has exactly one of command, url or module; remove all but one of {', '.join(given)}")
        return self


class ProfileServerEntry(_ServerFields):
    """A server in a profile: a catalog server by its key (optionally overriding prefix, enabled, timeout_seconds, isolation and tools), or an inline server with its own command, url or module."""

    @model_validator(mode="after")
    def _at_most_one_kind(self) -> ProfileServerEntry:
        given = self._given_kinds()
        if len(given) > 1:
            raise ValueError(f"a server has exactly one of command, url or module; remove all but one of {', '.join(given)}")
        return self

    @property
    def is_reference(self) -> bool:
        """True when the entry names a catalog server (it has no command, url or module)."""
        return not self._given_kinds()

    def overrides(self) -> dict[str, Any]:
        """The overridable settings this entry gives explicitly."""
        return {key: getattr(self, key) for key in OVERRIDABLE_FIELDS if key in self.model_fields_set}

    def to_server(self) -> ServerConfig:
        """This entry as a full server (for inline entries)."""
        return ServerConfig.model_validate(self.model_dump(exclude_unset=True, mode="python"))


def _empty_when_null(value: Any) -> Any:
    """`github:` with nothing after it refers to the catalog server as it is, like `github: {}`."""
    return {} if value is None else value


class LockConfig(_Model):
    """How the running gateway treats tools that differ from the reviewed lock file `profiles/<slug>.lock.json`."""

    policy: Literal["off", "warn", "hide", "block"] = "warn"
    """`off`: ignore the lock; `warn`: log and flag in /status a tool whose definition differs from the lock or is not in it; `hide`: also hide such tools from clients; `block`: take the server offering such a tool out of the profile. Without this key the policy is `warn` when a lock file exists, else `off`."""


class ProfileConfig(_Model):
    """profiles/<slug>.yaml: one profile, served at /mcp/<slug>."""

    description: str | None = None
    """What this profile is for; shown in /status."""
    servers: dict[str, Annotated[ProfileServerEntry, BeforeValidator(_empty_when_null, json_schema_input_type=ProfileServerEntry | None)]] = {}
    """Servers of this profile, in order (the first wins a name clash): catalog references or inline servers."""
    api_keys: list[Template] = []
    """If any: clients must send `Authorization: Bearer <key>` with one of these (or a gateway-wide key). Write them as `${secret:NAME}`."""
    lock: LockConfig | None = None
    """Enforcement of the lock file `profiles/<slug>.lock.json` (written by `local-mcp-gateway lock`)."""
    oauth: InboundOAuthConfig | None = None
    """Accept OAuth access tokens (JWTs) here; fields left out come from `security.oauth`. Works beside `api_keys`."""
    access: list[AccessRule] = []
    """Per-tool rules: a tool matched by a rule is for callers holding all of its scopes; other tools are open to every authenticated caller."""


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
