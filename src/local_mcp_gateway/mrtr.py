"""Multi-round-trip requests (MCP 2026-07-28) in front of upstreams that ask questions mid-call.

A 2026-07-28 client has no session, so an upstream's server-to-client request (sampling, elicitation, roots) made
while serving its call cannot be sent to it. Instead the call is answered with an `input_required` result that
carries the questions; the client retries the same request with its answers and the echoed `requestState`.

The upstream call is held open meanwhile (`held.HeldCalls`): when the retry reaches the same gateway, the
answers go to the questions the upstream is waiting on and the call goes on, exactly as over a direct session;
the tool runs once. When it reaches another replica, or comes after the hold, the retry runs the upstream call
again and each question the upstream asks is answered from the answers gathered so far, matched by its position
and kind (`elicitation-1`, `sampling-2`, ...). The state handed to the client holds the answers, the keys of the
questions asked in the last round and the held call's id; it is sealed (AES-GCM, bound to the method, target,
arguments, profile and expiry) by the SDK's `RequestStateBoundary`, so a tampered or foreign state is refused
before anything reaches an upstream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.session import ServerSession
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from local_mcp_gateway.held import HeldCalls, settle
from local_mcp_gateway.upstream.connection import CALLER_CAPABILITIES, Caller

__all__ = [
    "REQUEST_STATE_TTL",
    "InputRound",
    "answer_rounds",
    "pass_rounds_through",
    "request_state_boundary",
    "run_round",
    "state_key_from_identity",
]

logger = logging.getLogger(__name__)

REQUEST_STATE_TTL = 600.0
"""Seconds a client has to answer an `input_required` round."""

_KEY_INFO = b"local-mcp-gateway/request-state/v1"

_KINDS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}

_REQUIRED = {
    "sampling/createMessage": types.ClientCapabilities(sampling=types.SamplingCapability()),
    "elicitation/create": types.ClientCapabilities(elicitation=types.ElicitationCapability()),
    "roots/list": types.ClientCapabilities(roots=types.RootsCapability()),
}

COLLECT_WINDOW = 0.1
"""Seconds to keep collecting after an upstream's first question, so questions it asks together form one round."""


def state_key_from_identity(identity_text: str) -> bytes:
    """A request-state key derived (HKDF-SHA256) from the gateway's age identity: every replica holding it shares it."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_KEY_INFO).derive(identity_text.encode())


def request_state_boundary(keys: list[bytes] | None, audience: str) -> RequestStateBoundary:
    """The SDK middleware that seals outgoing and verifies incoming `requestState` (ephemeral key without `keys`)."""
    security = (
        RequestStateSecurity(keys=keys, ttl=REQUEST_STATE_TTL, bind_principal=None)
        if keys
        else RequestStateSecurity.ephemeral(ttl=REQUEST_STATE_TTL)
    )
    return RequestStateBoundary(security, default_audience=audience)


class _Pending:
    """A question an upstream is waiting on: answered by the client's retry, or abandoned."""

    __slots__ = ("answer", "ready")

    def __init__(self) -> None:
        self.ready = anyio.Event()
        self.answer: Any = None


class InputRound(Caller):
    """A 2026-07-28 caller: questions are answered from earlier rounds, or collected for an `input_required` result."""

    def __init__(self, session: ServerSession, request_id: types.RequestId | None, answers: Mapping[str, Any]) -> None:
        super().__init__(session, request_id)
        self.answers = dict(answers)
        self.asked: dict[str, dict[str, Any]] = {}
        """The questions of the current round, by key."""
        self.pending: dict[str, _Pending] = {}
        self.need_input = anyio.Event()
        self.ended = anyio.Event()
        """Set when the call is given up: questions still pending upstream are answered with an error then."""
        self.refusal: MCPError | None = None
        self.progress: ProgressFnT | None = None
        """Where the call's progress goes now: the request being answered (the first, then each retry's)."""
        self._count = 0

    def answering(self, ctx: Any, progress: ProgressFnT | None) -> None:
        """The request `ctx` now waits on this call: its questions are checked against that request's capabilities
        and its progress and log messages go to it."""
        self.session = ctx.session
        self.request_id = ctx.request_id
        self.progress = progress

    async def relay_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """The upstream's progress, to the request waiting on the call; none waits between two rounds."""
        if self.progress is not None:
            await self.progress(progress, total, message)

    async def ask(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        if self.ended.is_set():
            raise _abandoned(request)
        self._count += 1
        key = f"{_KINDS.get(request.method, 'input')}-{self._count}"
        if key in self.answers:
            return result_type.model_validate(self.answers[key], by_name=False)
        required = _REQUIRED.get(request.method)
        if required is not None and not self.session.check_client_capability(required):
            # The client cannot answer this kind of question: the request fails with -32021 naming the capability
            # (an upstream on the handshake line cannot be told which capabilities this one client declared).
            self.refusal = MCPError(
                types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                f"A server behind this profile needs the client's {_KINDS[request.method]} capability, "
                "which the request did not declare",
                {"requiredCapabilities": required.model_dump(by_alias=True, mode="json", exclude_none=True)},
            )
            self.need_input.set()
            await self.ended.wait()
            raise _abandoned(request)
        self.asked[key] = request.model_dump(by_alias=True, mode="json", exclude_none=True)
        pending = self.pending[key] = _Pending()
        self.need_input.set()
        # The question travels to the client in the input_required result; the upstream waits for the answer
        # the client's retry brings. A round given up is answered with an error, so no upstream handler waits
        # for a connection to close.
        await pending.ready.wait()
        if pending.answer is None:
            raise _abandoned(request)
        return result_type.model_validate(pending.answer, by_name=False)

    def give(self, responses: Mapping[str, Any]) -> None:
        """Start the next round with the client's answers: the questions they answer go on upstream."""
        self.need_input = anyio.Event()
        unanswered = {key: self.asked[key] for key in self.pending if key not in responses}
        for key, answer in responses.items():
            pending = self.pending.pop(key, None)
            if pending is not None:
                self.answers[key] = answer
                pending.answer = answer
                pending.ready.set()
        self.asked = unanswered
        if unanswered:  # asked again at once
            self.need_input.set()

    def end(self) -> None:
        """Give the round up: every question still waiting is answered with an error."""
        self.ended.set()
        for pending in self.pending.values():
            pending.ready.set()
        self.pending.clear()


def _abandoned(request: types.ServerRequest) -> MCPError:
    return MCPError(
        types.INTERNAL_ERROR,
        f"{request.method}: the question went to the client in an input_required round that ended without its "
        "answer here; this call was cancelled (a retry runs it again with the client's answer)",
    )


def _read_state(plaintext: str | None) -> tuple[dict[str, Any], list[str], str | None]:
    if not plaintext:
        return {}, [], None
    try:
        state = json.loads(plaintext)
        held = state.get("held")
        return dict(state["answers"]), list(state["asked"]), held if isinstance(held, str) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MCPError(types.INVALID_PARAMS, "Invalid or expired requestState") from None


async def run_round(
    ctx: Any,
    params: Any,
    call: Callable[[InputRound], Awaitable[dict[str, Any]]],
    held_calls: HeldCalls,
    tg: TaskGroup,
    progress: ProgressFnT | None = None,
) -> dict[str, Any] | types.InputRequiredResult:
    """Run `call` for a 2026-07-28 request, translating upstream questions into `input_required` rounds.

    `progress` relays progress to this request; a held call's progress goes to whichever request waits on it
    (`InputRound.relay_progress`)."""
    answers, asked_before, held_id = _read_state(params.request_state)
    responses = {
        key: value.model_dump(by_alias=True, mode="json", exclude_none=True) if hasattr(value, "model_dump") else value
        for key, value in (params.input_responses or {}).items()
    }
    held = held_calls.take(held_id) if held_id else None
    # Answers to questions that were not asked are ignored (SEP-2322: servers SHOULD ignore unrecognized
    # inputResponses); they never reach an upstream. Missing answers are simply asked again.
    unasked = sorted(set(responses) - set(held.round.pending if held is not None else asked_before))
    if unasked:
        logger.debug("ignored inputResponses for questions that were not asked: %s", ", ".join(unasked))
    if held is not None:
        held.round.answering(ctx, progress)
        held.round.give({key: value for key, value in responses.items() if key in held.round.pending})
    else:
        answers.update({key: value for key, value in responses.items() if key in asked_before})
        round_ = InputRound(ctx.session, ctx.request_id, answers)
        round_.answering(ctx, progress)
        held = held_calls.start(tg, round_, call)

    try:
        await settle(held, COLLECT_WINDOW)
    except BaseException:  # the client left or cancelled: the upstream call ends with it
        held_calls.stop(held)
        raise
    round_ = held.round
    if held.done.is_set():
        if "error" in held.outcome:
            raise held.outcome["error"]
        if "result" in held.outcome:
            return held.outcome["result"]
        raise MCPError(types.INTERNAL_ERROR, "the call was stopped before it completed")
    if round_.refusal is not None:
        held_calls.stop(held)
        raise round_.refusal
    held_calls.keep(held)
    round_.progress = None  # this request ends with the round; the retry takes the call's progress
    state = {"answers": round_.answers, "asked": sorted(round_.asked), "held": held.id}
    return types.InputRequiredResult(
        input_requests={key: _input_request(value) for key, value in round_.asked.items()},
        request_state=json.dumps(state, separators=(",", ":"), sort_keys=True),
    )


def _input_request(raw: dict[str, Any]) -> Any:
    kinds = {
        "sampling/createMessage": types.CreateMessageRequest,
        "elicitation/create": types.ElicitRequest,
        "roots/list": types.ListRootsRequest,
    }
    return kinds[raw["method"]].model_validate(raw, by_name=False)


# -- upstreams on the 2026-07-28 line ----------------------------------------------------------------------------

MAX_ROUNDS = 16
"""Most `input_required` rounds the gateway answers for one session caller before giving up."""

_INPUT_RESULTS: dict[str, Any] = {
    "sampling/createMessage": types.CreateMessageResult,
    "elicitation/create": types.ElicitResult,
    "roots/list": types.ListRootsResult,
}


def _is_input_required(result: Mapping[str, Any]) -> bool:
    return result.get("resultType") == "input_required"


def _retry(request: Any, responses: Mapping[str, Any] | None, state: str | None) -> Any:
    """The same request again, carrying answers and the upstream's request state."""
    wire = request.model_dump(by_alias=True, mode="json", exclude_none=True)
    params = dict(wire.get("params") or {})
    params.pop("inputResponses", None)
    params.pop("requestState", None)
    if responses:
        params["inputResponses"] = dict(responses)
    if state is not None:
        params["requestState"] = state
    wire["params"] = params
    return type(request).model_validate(wire, by_name=False)


async def answer_rounds(ctx: Any, upstream: Any, request: Any, progress: Any) -> dict[str, Any]:
    """A session caller, an upstream on 2026-07-28: answer its `input_required` rounds by asking the caller.

    Each question of a round goes to the client as the server request it stands for (sampling, elicitation,
    roots), on the stream of the call that caused it; the answers go back upstream with the echoed state.
    """
    caller = Caller(ctx.session, ctx.request_id)
    for _ in range(MAX_ROUNDS):
        result = await upstream.request(request, caller, progress=progress)
        if not _is_input_required(result):
            result.pop("resultType", None)
            return result
        responses: dict[str, Any] = {}
        for key, raw in (result.get("inputRequests") or {}).items():
            answer = await caller.ask(_input_request(raw), _INPUT_RESULTS[raw["method"]])
            responses[key] = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
        request = _retry(request, responses, result.get("requestState"))
    raise MCPError(types.INTERNAL_ERROR, f"the server asked more than {MAX_ROUNDS} rounds of questions; gave up")


async def pass_rounds_through(ctx: Any, params: Any, upstream: Any, request: Any, progress: Any) -> Any:
    """A 2026-07-28 caller, an upstream on 2026-07-28: its `input_required` rounds pass through as they are.

    The questions keep the upstream's keys; the upstream's own request state rides inside the gateway's sealed
    one. The upstream sees the capabilities the client declared on this request, so it asks only what the client
    can answer (and refuses with -32021 what it cannot do without).
    """
    state = json.loads(params.request_state) if params.request_state else {}
    if not isinstance(state, dict):
        raise MCPError(types.INVALID_PARAMS, "Invalid or expired requestState")
    responses = {
        key: value.model_dump(by_alias=True, mode="json", exclude_none=True) if hasattr(value, "model_dump") else value
        for key, value in (params.input_responses or {}).items()
    }
    retried = _retry(request, responses, state.get("upstream"))
    capabilities = ctx.session.client_capabilities
    token = CALLER_CAPABILITIES.set(
        capabilities.model_dump(by_alias=True, mode="json", exclude_none=True) if capabilities is not None else {}
    )
    try:
        result = await upstream.request(retried, Caller(ctx.session, ctx.request_id), progress=progress)
    finally:
        CALLER_CAPABILITIES.reset(token)
    if not _is_input_required(result):
        result.setdefault("resultType", "complete")
        return result
    return types.InputRequiredResult(
        input_requests={key: _input_request(raw) for key, raw in (result.get("inputRequests") or {}).items()},
        request_state=json.dumps({"upstream": result.get("requestState")}, separators=(",", ":")),
    )
