"""Clean edges of the command line and the process: a port in use, stopping with streams open, running out of file
descriptors, typing a secret at a terminal, and `tools` with per-session and failing servers."""

from __future__ import annotations

import os
import pty
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from local_mcp_gateway.secrets import Identity
from tests.conftest import PYTHON, ConfigRepo, fixture_server, start_gateway
from tests.security.conftest import UPSTREAM, upstream_env

STOP_BOUND = 10.0
"""Generous bound for a stop that takes well under 2 s on an idle machine (the figure is printed, not asserted)."""

STREAMS_HELD = 3
"""Sessions whose clients hold their GET stream open until the gateway stops."""

COMMAND_TIMEOUT = 120.0
"""Seconds a one-shot command (`run` refusing, `tools`, `secret set`) may take on a loaded machine."""


def cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    environment.update(env or {})
    return subprocess.run([PYTHON, "-m", "local_mcp_gateway", *args], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, env=environment, start_new_session=True, **kwargs)


# -- a port already in use -----------------------------------------------------------------------------------------


def test_a_port_in_use_is_one_line_naming_the_address_before_any_upstream_starts(config_repo: ConfigRepo,
                                                                                tmp_path: Path) -> None:
    marker = tmp_path / "started"
    starter = {"command": PYTHON, "args": ["-c", f"open({str(marker)!r}, 'w').close(); import time; time.sleep(60)"]}
    config_repo.write_profile("p", {"starter": starter})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = cli("run", "--config", str(config_repo.path),
                       env={"MCP_GATEWAY_PORT": str(port), "MCP_GATEWAY_HOST": "127.0.0.1"})
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    assert finished.returncode == 1, finished.stderr
    assert len(lines) == 1, finished.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines[0]
    assert not marker.exists(), "an upstream was started although the gateway could not listen"


# -- stopping with a GET stream open ---------------------------------------------------------------------------------


def open_get_stream(base: str, port: int) -> socket.socket:
    """An MCP session with its standalone GET stream open (response head received), on a raw socket."""
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "edge-test", "version": "1"}}}
    response = httpx2.post(f"{base}/mcp/p", json=init, headers=accept, timeout=30)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    headers = {**accept, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
    done = httpx2.post(f"{base}/mcp/p", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                       headers=headers, timeout=30)
    assert done.status_code == 202, done.text
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"GET /mcp/p HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "the GET stream closed at once"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_gateway_quickly_and_quietly_with_a_get_stream_open(
    config_repo: ConfigRepo, tmp_path: Path, signum: int
) -> None:
    config_repo.write_profile("p", {"up": UPSTREAM})
    gateway = start_gateway(config_repo.path, tmp_path / "gateway.log", env=upstream_env())
    port = int(gateway.base_url.rsplit(":", 1)[1])
    streams = [open_get_stream(gateway.base_url, port) for _ in range(STREAMS_HELD)]
    try:
        started = time.monotonic()
        gateway.process.send_signal(signum)
        try:
            gateway.process.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            os.killpg(gateway.process.pid, signal.SIGKILL)
            gateway.process.wait(10)
            raise AssertionError(f"the gateway did not stop within {STOP_BOUND} s:\n{gateway.log()}") from None
        took = time.monotonic() - started
    finally:
        for stream in streams:
            stream.close()
    print(f"stopped {took:.2f} s after {signal.Signals(signum).name} with {STREAMS_HELD} GET streams open")
    log = gateway.log()
    assert gateway.process.returncode == 0, log
    assert "Traceback" not in log and " ERROR " not in log, log


# -- out of file descriptors -------------------------------------------------------------------------------------------


def test_running_out_of_descriptors_is_logged_once_per_interval(config_repo: ConfigRepo, tmp_path: Path) -> None:
    config_repo.write_profile("p", {"up": UPSTREAM})
    gateway = start_gateway(config_repo.path, tmp_path / "gateway.log", env=upstream_env())
    port = int(gateway.base_url.rsplit(":", 1)[1])
    pid = gateway.process.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    limit = in_use + 8
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))  # the soft limit only, so it can be raised again
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(held) < 300:  # bounded: well past the limit, for some seconds
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
            if len(held) > 40:
                time.sleep(0.02)
        time.sleep(3)  # let the accept loop retry a few times while the limit holds (asyncio retries every 1 s)
    finally:
        for sock in held:
            sock.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    deadline = time.monotonic() + 30
    while httpx2.get(f"{gateway.base_url}/healthz", timeout=10).status_code != 200:  # serving again
        assert time.monotonic() < deadline
    gateway.stop()
    log = gateway.log()
    reports = log.count("out of file descriptors")
    assert reports >= 1, log  # it was reached and said so
    assert reports <= 2, log  # once per interval (60 s), not once per connection or per retry
    assert "Traceback" not in log, log


# -- secret set at a terminal --------------------------------------------------------------------------------------------


def test_secret_set_at_a_terminal_does_not_echo_the_value(config_repo: ConfigRepo) -> None:
    identity = Identity.generate()
    config_repo.write_gateway(secrets={"recipients": [identity.recipient]})
    value = "typed-" + Identity.generate().recipient[-20:]
    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    process = subprocess.Popen([PYTHON, "-m", "local_mcp_gateway", "secret", "set", "tok", "-c", str(config_repo.path)],
                               stdin=slave, stdout=slave, stderr=slave, env=environment, start_new_session=True)
    os.close(slave)
    seen = b""

    def read_for(seconds: float) -> None:
        nonlocal seen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    return
                if not chunk:
                    return
                seen += chunk
            elif process.poll() is not None:
                return

    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while b"value" not in seen.lower() and b"standard input" not in seen and time.monotonic() < deadline:
            read_for(0.5)  # the prompt
        os.write(master, value.encode() + b"\n")
        read_for(10)
        if process.poll() is None:
            os.write(master, b"\x04")  # an old-style reader waits for end of input
            read_for(10)
        process.wait(COMMAND_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        os.close(master)
    text = seen.decode(errors="replace")
    assert value not in text, f"the value was echoed: {text!r}"
    assert process.returncode == 0, text
    stored = identity.decrypt((config_repo.root / "secrets" / "tok.age").read_bytes()).decode()
    assert stored == value


# -- tools PROFILE -----------------------------------------------------------------------------------------------------


def tools_repo(config_repo: ConfigRepo) -> None:
    per_session = {**fixture_server("echo_server.py", "--name", "mine"), "isolation": "per_session"}
    ghost = {"command": PYTHON, "args": ["-c", "import sys; print('ghost says: cannot find my config', "
                                               "file=sys.stderr); sys.exit(3)"]}
    config_repo.write_profile("p", {"mine": per_session, "ghost": ghost})


def test_tools_lists_per_session_servers_and_fails_with_the_stderr_of_a_failed_server(config_repo: ConfigRepo) -> None:
    tools_repo(config_repo)
    finished = cli("tools", "p", "--config", str(config_repo.path))
    assert "mine__echo" in finished.stdout, finished.stdout + finished.stderr
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "'ghost'" in finished.stderr and "ghost says: cannot find my config" in finished.stderr, finished.stderr
    assert "Traceback" not in finished.stderr


def test_tools_json_into_a_closed_pipe_exits_quietly(config_repo: ConfigRepo) -> None:
    config_repo.write_profile("p", {"mine": fixture_server("echo_server.py", "--tools", "200")})
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already gone: every write gets EPIPE
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    try:
        finished = subprocess.run([PYTHON, "-m", "local_mcp_gateway", "tools", "p", "--json", "-c",
                                   str(config_repo.path)], stdout=write_end, stderr=subprocess.PIPE, text=True,
                                  timeout=COMMAND_TIMEOUT, env=environment, start_new_session=True)
    finally:
        os.close(write_end)
    assert "Traceback" not in finished.stderr and "BrokenPipe" not in finished.stderr, finished.stderr
    assert finished.returncode == 0, finished.stderr
