"""The settings of one profile's endpoint that come from `gateway.yaml` (`gateway.profile_options`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings

from local_mcp_gateway.held import DEFAULT_HOLD_SECONDS

__all__ = ["SESSION_IDLE_TIMEOUT", "ProfileOptions"]

SESSION_IDLE_TIMEOUT = 30 * 60.0
"""A client session with no request for this long is closed (its per-session upstreams too)."""


@dataclass(frozen=True)
class ProfileOptions:
    """Transport-level settings of a profile's endpoint."""

    security: TransportSecuritySettings | None = None
    max_sessions: int | None = 1000
    """Most open client sessions; at the cap the idlest is closed to make room (see `transport.SessionManager`)."""
    max_request_bytes: int = 4 * 1024 * 1024
    session_idle_timeout: float | None = SESSION_IDLE_TIMEOUT
    max_per_session_upstreams: int = 16
    """Most live upstreams of one `per_session` server; at the cap the one unused longest is stopped."""
    max_calls_in_flight: int = 64
    """Most requests being answered at once (see `budget.CallBudget`)."""
    max_buffered_result_bytes: int = 64 * 1024 * 1024
    """Most bytes of answers waiting to be read by clients (see `budget.CallBudget`)."""
    input_round_hold: float = DEFAULT_HOLD_SECONDS
    """Seconds an upstream call that asked a 2026-07-28 client a question waits for the client's retry."""
    request_state_keys: list[bytes] | None = None
    """Keys sealing 2026-07-28 `requestState` (shared by replicas); None: a key of this process only."""
    module_stamps: Mapping[str, str | None] = field(default_factory=dict)
    """Fingerprints of in-process servers' module sources: a changed one restarts the servers using it."""
    traffic: Any = None
    """`logging.traffic` settings: when enabled, a redacted record of each MCP request (see `security.TrafficLog`)."""
    lock: Any = None
    """The profile's lock guard (`gitops.enforce.LockGuard`): tools differing from the reviewed lock are flagged,
    hidden or blocked; None: no lock enforced."""
