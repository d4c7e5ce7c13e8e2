"""A running gateway at DEBUG level never shows a secret value or its age key, whatever goes wrong.

One real gateway process gets secrets in every place a configuration can hold them (a stdio server's `env` and
`args`, a remote server's headers and URL, profile `api_keys`) and the age key in `MCP_GATEWAY_AGE_KEY`. The test
then provokes the errors a user meets (missing command, crashing server, unreachable server, wrong keys,
malformed requests, failing tool calls, broken reloads, a rotated secret), makes calls that succeed, and gathers
everything a person or a log collector can see: the process's stdout/stderr, `/status`, `/healthz`, `/readyz`,
`/traffic/<slug>`, every HTTP status line, header and body, and the text and repr of every exception a client saw.
Each secret, in every simple encoding (URL, JSON, Python repr, base64) and by its random core whole and by its
two ends (which catches truncated and re-quoted copies), must appear zero times. The wrong keys clients sent
count as secrets too.

Values a tool returns on purpose are not leaks, so no tool here is asked to echo a secret back. Likewise the
answer to a malformed request may repeat part of that request's own body to its sender (the SDK's validation
message quotes a shortened `input_value`); the log and every other surface may not.
"""

from __future__ import annotations

import base64
import json
import secrets as random_source
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, quote_plus

import anyio
import httpx2
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from local_mcp_gateway.secrets import Identity, encrypt_to
from tests.conftest import FIXTURES, ConfigRepo, GatewayProcess, free_port, mcp_client
from tests.fixtures.launch import http_fixture

pytestmark = pytest.mark.anyio

PROFILE: Final = "main"
"""The profile every server is served in; it requires an API key."""

SETTLE_TIMEOUT_SECONDS: Final = 20.0
"""Bound on waiting for a reload (watch quiet period plus load) or a server to reach a final state."""

POLL_INTERVAL_SECONDS: Final = 0.1

DEAD_SERVER_TIMEOUT_SECONDS: Final = 3
"""`timeout_seconds` of the unreachable server, so requests waiting for it give up quickly."""

MASK_EXAMPLE: Final = "**********"
"""What a masked value looks like in the gateway's output; used only to show the search leaves it alone."""

MCP_HEADERS: Final = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

CORE_LENGTH: Final = 12
"""Random bytes in each secret's core (24 hex characters): long enough to be unique in any output."""

CORE_PART_LENGTH: Final = 10
"""Hex characters of a core's head and tail searched on their own: pydantic and friends shorten long values to
their two ends (`'mgk_ab6d8e5ee9...2ece200a40b8'`), and 40 random bits do not turn up by chance."""


def _core() -> str:
    return random_source.token_hex(CORE_LENGTH)


@dataclass(frozen=True)
class SecretValues:
    """The secret values of one run, by the name of their `secrets/<name>.age` file."""

    cores: dict[str, str]
    values: dict[str, str]

    @classmethod
    def generate(cls) -> SecretValues:
        cores = {name: _core() for name in SECRET_SHAPES}
        values = {name: shape.format(core=core) for (name, shape), core in zip(SECRET_SHAPES.items(), cores.values())}
        return cls(cores, values)


SECRET_SHAPES: Final = {
    # stdio env; rotated to `env_tok_v2` by a reload
    "env_tok": "envtok-{core}-tail",
    # stdio args: quotes, a backslash, a slash, non-ASCII and URL-special characters, so every encoding differs
    "arg_tok": 'Arg "{core}" \\ /\u00e9+&=%20 <tail>',
    # remote server Authorization header: what a bearer token may contain, URL-special on purpose
    "hdr_tok": "hdr-{core}+/=~._tail",
    # unreachable server: a header and a query parameter of its URL
    "dead_tok": "deadtok-{core}-tail",
    "url_tok": "urltok-{core}-tail",
    # arguments of a command that does not exist
    "cmd_tok": "cmdtok-{core}-tail",
    # arguments of a server that exits at once and prints them in its usage error
    "exit_tok": "exittok-{core}-tail",
    # the profile's API key
    "api_key": "mgk_{core}+/=.~-tail",
    # the rotated value of env_tok, written during the run
    "env_tok_v2": "envtwo-{core}-tail",
}


# -- what a leak looks like -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Needle:
    """One string that must not appear: `secret` names the value, `label` says which value and which encoding."""

    secret: str
    label: str
    text: str


def encodings(value: str) -> dict[str, str]:
    """The simple forms a value takes when it ends up in text."""
    raw = value.encode()
    return {
        "raw": value,
        "url": quote(value, safe=""),
        "url-path": quote(value),
        "url-plus": quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "json-unicode": json.dumps(value, ensure_ascii=False)[1:-1],
        "repr": repr(value)[1:-1],
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def needles_for(secret: str, value: str, core: str | None = None) -> list[Needle]:
    """Every encoding of `value`, plus its random core whole and by its two ends (shortened copies)."""
    label = f"secret {secret}"
    found = {Needle(secret, f"{label} ({form})", text) for form, text in encodings(value).items()}
    if core:
        found.add(Needle(secret, f"{label} (core)", core))
        found.add(Needle(secret, f"{label} (head of core)", core[:CORE_PART_LENGTH]))
        found.add(Needle(secret, f"{label} (tail of core)", core[-CORE_PART_LENGTH:]))
    return sorted(found, key=lambda needle: needle.label)


def age_key_needles(identity: Identity) -> list[Needle]:
    """The age key as written, in lower case (bech32 is case-insensitive) and its data part alone."""
    key = identity.reveal()
    data = key.split("-")[-1][1:]  # after `AGE-SECRET-KEY-1`
    return [
        *needles_for("age key", key),
        Needle("age key", "age key (lower case)", key.lower()),
        Needle("age key", "age key (data part)", data),
        Needle("age key", "age key (data part, lower case)", data.lower()),
    ]


@dataclass(frozen=True)
class Seen:
    """One text seen at `where`; `senders_own` names secrets that the request itself carried.

    An answer may repeat what its own request sent (the sender knows it already), like a tool echoing its
    argument; every other surface, the log above all, may not.
    """

    where: str
    text: str
    senders_own: frozenset[str] = frozenset()


@dataclass
class Evidence:
    """Every text the outside world saw, by where it was seen."""

    texts: list[Seen] = field(default_factory=list)

    def add(self, where: str, text: str, senders_own: frozenset[str] = frozenset()) -> None:
        self.texts.append(Seen(where, text, senders_own))

    def add_response(self, where: str, response: httpx2.Response, senders_own: frozenset[str] = frozenset()
                     ) -> None:
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        self.add(where, f"HTTP {response.status_code} {response.reason_phrase}\n{headers}\n\n{response.text}",
                 senders_own)

    def add_exception(self, where: str, exc: BaseException) -> None:
        for part in _walk(exc):
            self.add(where, f"{type(part).__name__}: {part}\n{part!r}")
            if isinstance(part, MCPError):
                self.add(where, part.error.model_dump_json(by_alias=True))

    def hits(self, needles: list[Needle]) -> list[str]:
        """One line per leak: where, which needle, and the line with the value replaced by <SECRET>."""
        ordered = sorted(needles, key=lambda needle: -len(needle.text))  # replace whole values before parts
        report = []
        for seen in self.texts:
            searched = [needle for needle in ordered if needle.secret not in seen.senders_own]
            for line in seen.text.splitlines():
                found = [needle for needle in searched if needle.text in line]
                if not found:
                    continue
                shown = line
                for needle in found:
                    shown = shown.replace(needle.text, "<SECRET>")
                first_per_secret = {needle.secret: needle.label for needle in reversed(found)}
                labels = ", ".join(first_per_secret.values())
                report.append(f"{seen.where}: {shown[:400]}\n    ({labels})")
        return report


def _walk(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its group members and its causes, each once."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


# -- the configuration --------------------------------------------------------------------------------------------


def write_secret(repo: ConfigRepo, name: str, value: str, recipient: str) -> None:
    (repo.root / "secrets" / f"{name}.age").write_bytes(encrypt_to([recipient], value.encode()))


def local_server(env_secret: str = "env_tok") -> dict[str, Any]:
    """The echo server over stdio, with a secret in its environment and one in its interpreter options."""
    return {
        "command": sys.executable,
        # `-X name=value` options are accepted and ignored by CPython: a harmless place for a secret argument.
        "args": ["-X", "gateway_tag=${secret:arg_tok}", str(FIXTURES / "echo_server.py"), "--name", "local"],
        # Names that do not sound secret, so only the value itself can give it away.
        "env": {"ECHO_SETTING": "${secret:" + env_secret + "}"},
    }


def profile_servers(env_secret: str = "env_tok") -> dict[str, Any]:
    return {
        "local": local_server(env_secret),
        "remote": {},
        "dead": {},
        "missing": {"command": "/nonexistent/mcp-server-leaktest", "args": ["--value", "${secret:cmd_tok}"]},
        # argparse refuses the option and prints it in its usage error on stderr, then the process exits.
        "quitter": {"command": sys.executable, "args": [str(FIXTURES / "echo_server.py"),
                             "--setting=${secret:exit_tok}"]},
    }


def write_config(repo: ConfigRepo, identity: Identity, values: SecretValues, remote_url: str) -> None:
    (repo.root / "secrets").mkdir(exist_ok=True)
    for name, value in values.values.items():
        if name != "env_tok_v2":
            write_secret(repo, name, value, identity.recipient)
    closed = free_port()
    repo.write_gateway(
        secrets={"recipients": [identity.recipient]},
        logging={"level": "debug", "traffic": {"enabled": True}},
        servers={
            "remote": {"url": remote_url, "headers": {"Authorization": "Bearer ${secret:hdr_tok}"}},
            "dead": {
                "url": f"http://127.0.0.1:{closed}/mcp?key=" + "${secret:url_tok}",
                "headers": {"Authorization": "Bearer ${secret:dead_tok}", "X-Upstream-Key": "${secret:dead_tok}"},
                "timeout_seconds": DEAD_SERVER_TIMEOUT_SECONDS,
            },
        },
    )
    repo.write_profile(PROFILE, profile_servers(), api_keys=["${secret:api_key}"])


def wrong_key_of_the_right_form(key: str) -> str:
    """Same length and alphabet as `key`, different value: what a stale or mistyped key looks like."""
    return "mgk_" + _core() + key[len("mgk_") + 2 * CORE_LENGTH:]


# -- waiting --------------------------------------------------------------------------------------------------------


async def poll(check: Callable[[], Awaitable[Any]], what: str, timeout: float = SETTLE_TIMEOUT_SECONDS) -> Any:
    """Await `check` until it returns something truthy (bounded by `timeout`); return that."""
    with anyio.move_on_after(timeout):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(POLL_INTERVAL_SECONDS)
    raise AssertionError(f"not within {timeout} s: {what}")


class Observer:
    """Reads the gateway's HTTP surfaces and keeps everything it saw as evidence."""

    def __init__(self, gateway: GatewayProcess, http: httpx2.AsyncClient, evidence: Evidence) -> None:
        self.gateway = gateway
        self.http = http
        self.evidence = evidence

    async def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        response = await self.http.get(f"{self.gateway.base_url}{path}", **kwargs)
        self.evidence.add_response(f"GET {path}", response)
        return response

    async def post(self, path: str, label: str, senders_own: frozenset[str] = frozenset(), **kwargs: Any
                   ) -> httpx2.Response:
        response = await self.http.post(f"{self.gateway.base_url}{path}", **kwargs)
        self.evidence.add_response(f"POST {path} ({label})", response, senders_own)
        return response

    async def status(self) -> dict[str, Any]:
        return (await self.get("/status")).json()

    async def reload_error_after(self, previous: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """The next `last_reload_error` that differs from `previous` (its `at` may repeat within a second)."""
        async def changed() -> dict[str, Any] | None:
            error = (await self.status())["last_reload_error"]
            return error if error and error != previous else None

        return await poll(changed, what)


# -- the test -------------------------------------------------------------------------------------------------------


async def test_no_secret_or_key_is_visible_anywhere(config_repo: ConfigRepo, gateway_factory: Any, tmp_path: Path
                                                    ) -> None:
    identity = Identity.generate()
    values = SecretValues.generate()
    api_key = values.values["api_key"]
    evidence = Evidence()

    with http_fixture("echo_server.py", "--name", "remote", stderr_path=tmp_path / "remote.log") as remote:
        write_config(config_repo, identity, values, remote.url)
        gateway = gateway_factory(
            config_repo.path, env={"MCP_GATEWAY_AGE_KEY": identity.reveal(), "MCP_GATEWAY_LOG_LEVEL": "debug"}
        )
        try:
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http:
                observer = Observer(gateway, http, evidence)
                wrong_keys = await provoke_bad_requests(observer, api_key)
                await exercise_client_calls(gateway, api_key, values, evidence)
                await provoke_reload_errors(observer, config_repo, identity, values)
                await exercise_after_rotation(gateway, api_key, values, evidence)
                await collect_surfaces(observer)
        finally:
            exit_code = gateway.stop()
        evidence.add("gateway stdout/stderr", gateway.log())

    assert exit_code == 0, gateway.log()
    log = gateway.log()
    assert "DEBUG" in log, "the gateway did not log at DEBUG level"
    assert "unrecognized arguments" in log, "the quitter's usage error (which carries a secret) was not logged"

    needles = [needle for name, value in values.values.items()
               for needle in needles_for(name, value, values.cores[name])]
    needles += age_key_needles(identity)
    needles += [needle for index, key in enumerate(wrong_keys)
                for needle in needles_for(f"wrong API key {index} a client sent", key)]
    leaks = evidence.hits(needles)
    assert not leaks, "secret values are visible:\n" + "\n".join(dict.fromkeys(leaks))


async def provoke_bad_requests(observer: Observer, api_key: str) -> list[str]:
    """Missing, wrong and almost-right API keys; malformed bodies; unknown profiles. Returns the wrong keys sent."""
    path = f"/mcp/{PROFILE}"
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    wrong = "not-the-key"
    almost = wrong_key_of_the_right_form(api_key)
    for label, headers in [
        ("no key", {}),
        ("wrong key", {"Authorization": f"Bearer {wrong}"}),
        ("key of the right form", {"Authorization": f"Bearer {almost}"}),
        ("key in the wrong scheme", {"Authorization": f"Basic {almost}"}),
    ]:
        response = await observer.post(path, label, headers={**MCP_HEADERS, **headers}, content=ping)
        assert response.status_code == 401, response.text
        assert response.headers.get("www-authenticate", "").startswith("Bearer")

    authorized = {**MCP_HEADERS, "Authorization": f"Bearer {api_key}"}
    secret_in_body = json.dumps({"note": api_key})
    bodies = {
        "malformed JSON": b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"note": "'
                          + api_key.encode() + b'"',
        "JSON that is not JSON-RPC": secret_in_body.encode(),
        "request without a session": json.dumps(
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "local__echo", "arguments": {"note": api_key}}}
        ).encode(),
    }
    for label, body in bodies.items():
        response = await observer.post(path, label, frozenset({"api_key"}), headers=authorized, content=body)
        assert 400 <= response.status_code < 500, (label, response.status_code)
    response = await observer.post("/mcp/no-such-profile", "unknown profile", headers=authorized, content=ping)
    assert response.status_code == 404

    try:
        async with mcp_client(observer.gateway.url(PROFILE), headers={"Authorization": f"Bearer {almost}"}):
            pass
    except Exception as exc:  # noqa: BLE001 - whatever the client raised is what a user sees
        observer.evidence.add_exception("client with a wrong key", exc)
    else:
        raise AssertionError("a client with a wrong key was let in")
    return [wrong, almost]


async def exercise_client_calls(gateway: GatewayProcess, api_key: str, values: SecretValues,
                                evidence: Evidence) -> None:
    """Calls that succeed, calls that fail with secrets in their arguments, and an upstream that logs one."""
    env_tok, arg_tok = values.values["env_tok"], values.values["arg_tok"]
    async with mcp_client(gateway.url(PROFILE), headers={"Authorization": f"Bearer {api_key}"}) as client:
        async def tool_names() -> set[str]:
            return {tool.name for tool in (await client.list_tools()).tools}

        await poll(lambda: _has({"local__echo", "remote__echo"}, tool_names),
                   "the local and remote servers list their tools")
        assert (await client.call_tool("local__echo", {"text": "plain words"})).content[0].text == "plain words"
        assert (await client.call_tool("remote__whoami", {})).content[0].text == "remote"
        assert (await client.call_tool("local__add", {"a": "2", "b": "40"})).content[0].text == "42"

        failing: list[tuple[str, dict[str, Any]]] = [
            ("nope", {"note": env_tok, "quoted": arg_tok}),            # unknown tool
            ("dead__echo", {"text": "hello", "note": env_tok}),        # the unreachable server's tool
            ("local__boom", {"note": env_tok, "quoted": arg_tok}),     # the upstream raises
            ("remote__boom", {"note": env_tok}),
        ]
        for name, arguments in failing:
            try:
                result = await client.call_tool(name, arguments)
            except MCPError as exc:
                evidence.add_exception(f"client error calling {name}", exc)
            else:
                evidence.add(f"client result of {name}", result.model_dump_json(by_alias=True))
                assert result.is_error, f"{name} was expected to fail"
        failed = await client.call_tool("local__fail", {"note": env_tok, "quoted": arg_tok})
        assert failed.is_error
        evidence.add("client result of local__fail", failed.model_dump_json(by_alias=True))
        # An upstream that puts a secret in a log message: the client gets it by design (not collected), the
        # gateway's own log and traffic record must not.
        logged = await client.call_tool("local__log", {"level": "error", "message": f"upstream knows {env_tok}"})
        assert logged.content[0].text == "logged"


async def _has(wanted: set[str], names: Callable[[], Awaitable[set[str]]]) -> bool:
    return wanted <= await names()


async def provoke_reload_errors(observer: Observer, repo: ConfigRepo, identity: Identity,
                                values: SecretValues) -> None:
    """Upstream failures settle, then three broken changes, then a valid one that rotates a secret."""
    servers = await poll(lambda: _settled(observer), "the working servers are ready and the broken ones failed")
    assert servers["quitter"]["state"] != "ready", servers["quitter"]

    profile_path = repo.root / "profiles" / f"{PROFILE}.yaml"
    good_profile = profile_path.read_text()
    profile_path.write_text(good_profile + "  broken: {command: [unclosed\n")
    error = await observer.reload_error_after(None, "a syntax error is reported")

    missing = yaml.safe_load(good_profile)
    missing["servers"]["local"]["env"]["ECHO_SETTING"] = "${secret:absent_tok}"
    profile_path.write_text(yaml.safe_dump(missing, sort_keys=False))
    error = await observer.reload_error_after(error, "a missing secret is reported")
    assert "absent_tok" in error["message"], error

    profile_path.write_text(good_profile)
    foreign = Identity.generate()
    write_secret(repo, "env_tok", values.values["env_tok_v2"], foreign.recipient)
    error = await observer.reload_error_after(error, "a secret that does not decrypt is reported")
    assert "env_tok" in error["message"], error

    generation = (await observer.status())["generation"]
    write_secret(repo, "env_tok", values.values["env_tok_v2"], identity.recipient)

    async def rotated() -> bool:
        status = await observer.status()
        return status["generation"] > generation and status["last_reload_error"] is None

    await poll(rotated, "the rotated secret is loaded")


async def _settled(observer: Observer) -> dict[str, Any] | None:
    """The servers' status once the good ones are ready, the broken ones gave up and the quitter exited once."""
    servers = (await observer.status())["profiles"][PROFILE]["servers"]
    states = {name: server["state"] for name, server in servers.items()}
    done = (states["local"] == states["remote"] == "ready" and states["missing"] == states["dead"] == "failed"
            and servers["quitter"]["error"])
    return servers if done else None


async def exercise_after_rotation(gateway: GatewayProcess, api_key: str, values: SecretValues,
                                  evidence: Evidence) -> None:
    """The restarted server answers; failing calls carry the retired and the current value in their arguments.

    A retired value stays secret: rotation is often the answer to its exposure, so it must not start showing up.
    """
    async with mcp_client(gateway.url(PROFILE), headers={"Authorization": f"Bearer {api_key}"}) as client:
        async def answers() -> bool:
            try:
                return (await client.call_tool("local__whoami", {})).content[0].text == "local"
            except MCPError:
                return False

        await poll(answers, "the restarted local server answers")
        arguments = {"note": values.values["env_tok"], "other": values.values["env_tok_v2"]}
        for name in ("local__boom", "remote__boom"):
            try:
                await client.call_tool(name, arguments)
            except MCPError as exc:
                evidence.add_exception(f"client error calling {name} after the rotation", exc)
            else:
                raise AssertionError(f"{name} was expected to raise")


async def collect_surfaces(observer: Observer) -> None:
    """Health, readiness, status and the traffic log, as a user or a monitor reads them."""
    assert (await observer.get("/healthz")).status_code == 200
    assert (await observer.get("/readyz")).status_code == 200
    status = await observer.status()
    assert status["profiles"][PROFILE]["servers"]["quitter"]["state"] in {"failed", "starting"}
    traffic = await observer.get(f"/traffic/{PROFILE}")
    assert traffic.status_code == 200 and "local__boom" in traffic.text, traffic.text[:500]
    await observer.get("/traffic/no-such-profile")
    await observer.get("/mcp", headers=MCP_HEADERS)


def test_the_search_finds_every_form_of_a_value() -> None:
    """The detector itself: each encoding, a shortened copy and a lower-cased age key are all reported."""
    values = SecretValues.generate()
    name, value, core = "arg_tok", values.values["arg_tok"], values.cores["arg_tok"]
    identity = Identity.generate()
    needles = needles_for(name, value, core) + age_key_needles(identity)
    shortened = f"input_value={{'note': '{value[:16]}...{value[-30:]}'}}"
    for form, text in [*encodings(value).items(), ("shortened", shortened), ("age key", identity.reveal().lower())]:
        evidence = Evidence()
        evidence.add(form, f"some line\nbefore {text} after\n")
        assert evidence.hits(needles), f"the {form} form was not found"
    own = Evidence()
    own.add("answer to the sender", value, senders_own=frozenset({name}))
    assert not own.hits(needles)
    clean = Evidence()
    clean.add("clean", f"nothing here but {MASK_EXAMPLE} and {identity.recipient}")
    assert not clean.hits(needles)
