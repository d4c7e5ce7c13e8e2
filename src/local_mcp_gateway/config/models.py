"""Pydantic models of `gateway.yaml` and `profiles/<slug>.yaml`: the single source of truth.

Field docstrings become the descriptions in the generated JSON Schemas (`schemas/*.json`), which
editors use for completion and CI uses for checks. Unknown keys are errors everywhere. Checks that
need more than one file (catalog references, secret files, names) live in `validate.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from local_mcp_gateway.config.template import Template

__all__ = [
    "AGE_RECIPIENT_PATTERN",
    "MODULE_PATTERN",
    "OVERRIDABLE_FIELDS",
    "PREFIX_PATTERN",
    "AccessRule",
    "AuditLogConfig",
    "InboundOAuthConfig",
    "LockConfig",
    "OAuthConfig",
    "ProfileConfig",
    "ProfileServerEntry",
    "ServerConfig",
    "ServerKind",
    "ToolOverride",
    "ToolsConfig",
]

AGE_RECIPIENT_PATTERN = r"^age1[02-9ac-hj-np-z]{58}$"
"""An X25519 age recipient: `age1` and 58 bech32 characters."""

MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
"""`package.module:attribute` (the attribute may be dotted)."""

PREFIX_PATTERN = r"^[A-Za-z0-9_-]{0,52}$"
"""A prefix short enough that `prefix__name` still leaves room for a readable name within 64 characters."""

DEFAULT_TIMEOUT_SECONDS = 60.0
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
