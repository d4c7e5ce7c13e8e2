"""`logging.format: json`: one object per line, with profile, server, session and trace ids; still redacted."""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest

from local_mcp_gateway.logs import setup_logging
from local_mcp_gateway.observability.context import LOG_CONTEXT, SERVER_CONTEXT, session_tag
from tests.conftest import mcp_client
from tests.observability.otlp import otlp_receiver
from tests.observability.test_tracing import context_seen, otel_env, trace_upstream

pytestmark = pytest.mark.anyio


def test_a_json_line_carries_the_request_context_and_is_redacted(capfd):
    setup_logging("info", "json")
    token = "sk-live-" + secrets.token_hex(12)
    profile_token = LOG_CONTEXT.set(("team", session_tag("3f2a-session-id")))
    server_token = SERVER_CONTEXT.set("github")
    try:
        logging.getLogger("local_mcp_gateway.test").warning("upstream answered 401 to Authorization: Bearer %s", token)
    finally:
        SERVER_CONTEXT.reset(server_token)
        LOG_CONTEXT.reset(profile_token)
    logging.getLogger("local_mcp_gateway.test").info("outside any request")
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2
    inside, outside = (json.loads(line) for line in lines)
    assert inside["level"] == "warning" and inside["profile"] == "team" and inside["server"] == "github"
    assert re.fullmatch(r"[0-9a-f]{12}", inside["session"]) and "3f2a-session-id" not in lines[0]
    assert token not in lines[0] and "Authorization" in inside["message"]
    assert "trace_id" not in inside  # no span is current
    assert "profile" not in outside and "session" not in outside and outside["message"] == "outside any request"


async def test_gateway_json_lines_name_profile_server_session_and_the_trace(config_repo, gateway_factory):
    config_repo.write_gateway(logging={"format": "json", "level": "debug"})
    with otlp_receiver() as receiver:
        config_repo.write_profile("team", {"local": trace_upstream()})
        gateway = gateway_factory(config_repo.path, env=otel_env(receiver.url))
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        async with mcp_client(gateway.url("team")) as client:
            seen = await context_seen(client, "local__trace_context", {"traceparent": f"00-{trace_id}-{client_span}-01"})
    leg_span = seen["meta"].split("-")[2]
    entries = []
    for line in gateway.log().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))  # every structured line is one whole JSON object
    served = [e for e in entries if e["message"].startswith("tools/call local__trace_context:")]
    assert len(served) == 1
    assert served[0]["profile"] == "team" and re.fullmatch(r"[0-9a-f]{12}", served[0]["session"])
    assert served[0]["trace_id"] == trace_id and served[0]["span_id"] not in (client_span, leg_span)
    leg = [e for e in entries if e["message"].startswith("upstream local: tools/call trace_context:")]
    assert len(leg) == 1
    assert leg[0]["server"] == "local" and leg[0]["profile"] == "team" and leg[0]["session"] == served[0]["session"]
    assert leg[0]["trace_id"] == trace_id and leg[0]["span_id"] == leg_span
