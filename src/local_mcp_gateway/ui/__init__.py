"""The read-only dashboard at `/ui/`, and what it shares with the command line.

Nothing here is imported until it is needed: `app.py` loads `ui.routes` (and with it Jinja templates) on the
first request under `/ui/`; `export` and `client-config` load `ui.export` and `ui.clients`, which are pure.

- `export.py`   a profile's catalog as a client sees it -> markdown, XML, TOON or JSON
- `toon.py`     the TOON encoder `export` uses (Token-Oriented Object Notation)
- `clients.py`  copy-paste client setup (Claude Desktop, Claude Code, Cursor, VS Code, Inspector, mcp-remote)
- `access.py`   who may open `/ui/`: Host allow-list, loopback, admin keys, sign-in sessions
- `views.py`    status, catalog and traffic shaped for the templates (pure)
- `routes.py`   the Quart blueprint: pages, server-sent events, exports, the OAuth Connect action
"""

from __future__ import annotations

__all__: list[str] = []
