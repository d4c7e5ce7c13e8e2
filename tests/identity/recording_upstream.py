"""An upstream MCP server over Streamable HTTP that writes the headers of every request it gets to a file.

    python tests/identity/recording_upstream.py --record FILE --transport http --host 127.0.0.1 --port 0

It serves the echo fixture's tools (`echo`, `add`, `boom`, ...), its prompt `greet` and its resources; each HTTP
request appends one JSON line `{"method": ..., "headers": {name: value}}` to FILE, so a test can prove what
the gateway sent upstream (and what it never sent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from echo_server import build_server  # noqa: E402
from fixture_serving import STREAMABLE_HTTP_PATH, _run_uvicorn, add_transport_arguments  # noqa: E402


def recording(app: Any, record: Path) -> Any:
    """`app` behind an ASGI layer appending each HTTP request's method and headers to `record`."""

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
            with record.open("a") as out:
                out.write(json.dumps({"method": scope["method"], "headers": headers}) + "\n")
        await app(scope, receive, send)

    return recorded


async def _serve(record: Path, host: str, port: int) -> None:
    server = build_server("recorded")
    app = server.streamable_http_app(streamable_http_path=STREAMABLE_HTTP_PATH, host=host)
    await _run_uvicorn(recording(app, record), host, port, STREAMABLE_HTTP_PATH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", type=Path, required=True, help="file to append request headers to")
    add_transport_arguments(parser)
    args = parser.parse_args()
    anyio.run(_serve, args.record, args.host, args.port)


if __name__ == "__main__":
    main()
