"""The Containerfile, the HAProxy example and the systemd unit: checked for what docs/deployment.md promises."""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.replicas.cluster import haproxy_binary

CONTAINERFILE = REPO / "Containerfile"
HAPROXY_EXAMPLE = REPO / "deploy" / "haproxy" / "haproxy.cfg"
UNIT = REPO / "deploy" / "systemd" / "local-mcp-gateway.service"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_image_is_slim_and_runs_as_a_user() -> None:
    steps = instructions(CONTAINERFILE.read_text())
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    final = steps[stages[-1]:]
    assert "slim" in final[0][1] and "python:3.1" in final[0][1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0
    after_user = final[[w for w, _ in final].index("USER"):]
    assert not any(word == "RUN" for word, _ in after_user)  # nothing runs as root after the switch
    env = " ".join(args for word, args in final if word == "ENV")
    assert "MCP_GATEWAY_HOST=0.0.0.0" in env and "MCP_GATEWAY_AGE_KEY" not in env
    assert ("ENTRYPOINT", '["local-mcp-gateway"]') in final
    assert not any(word in ("ADD",) for word, _ in steps)
    copied = " ".join(args for word, args in steps if word == "COPY")
    assert "key" not in copied.lower() and "secrets" not in copied and "state" not in copied


def test_the_haproxy_example_is_valid_and_hashes_on_the_session(tmp_path: Path) -> None:
    text = HAPROXY_EXAMPLE.read_text()
    assert "balance hdr(Mcp-Session-Id)" in text and "hash-type consistent" in text
    assert "http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost:8080" in text
    result = subprocess.run([haproxy_binary(), "-c", "-f", str(HAPROXY_EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_systemd_unit_hardens_the_service_and_passes_the_key_as_a_credential() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # keys are case-sensitive
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert shlex.split(service["ExecStart"])[1:3] == ["run", "--config"]
    assert service["ExecReload"].endswith("-HUP $MAINPID")
    assert service["DynamicUser"] == "yes" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""
    assert service["LoadCredential"].startswith("age-key:")
    environment = UNIT.read_text()
    assert "Environment=MCP_GATEWAY_AGE_KEY_FILE=%d/age-key" in environment
    assert "Environment=MCP_GATEWAY_STATE_DIR=%S/local-mcp-gateway" in environment
    assert "MCP_GATEWAY_AGE_KEY=" not in environment
    assert unit["Install"]["WantedBy"] == "multi-user.target"
