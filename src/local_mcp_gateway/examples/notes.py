"""The example stdio server: a note pad kept in memory for as long as the process runs.

    python -m local_mcp_gateway.examples.notes

Tools ``add_note(text)``, ``list_notes()`` and ``search_notes(query)``; the resource
``notes://all`` (every note, one per line); the prompt ``summarize_notes``. Notes are
numbered from 1 and vanish when the process stops: with ``isolation: per_session`` every
client session gets a note pad of its own.
"""

from __future__ import annotations

from typing import Final

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

__all__ = ["NotePad", "notes", "server"]

NOTES_URI: Final = "notes://all"
EMPTY_TEXT: Final = "(no notes yet)"


class NotePad:
    """Numbered notes in insertion order."""

    def __init__(self) -> None:
        self._notes: list[str] = []

    def add(self, text: str) -> int:
        """Store `text` and return its number (1-based)."""
        self._notes.append(text)
        return len(self._notes)

    def lines(self, query: str | None = None) -> list[str]:
        """``"<number>. <text>"`` for every note, or for those containing `query` (case-insensitive)."""
        needle = query.casefold() if query is not None else None
        return [
            f"{number}. {text}"
            for number, text in enumerate(self._notes, start=1)
            if needle is None or needle in text.casefold()
        ]


notes: Final = NotePad()
server: Final = MCPServer(
    "notes",
    version="1.0.0",
    instructions="A note pad: add notes, list them, search them.",
    log_level="WARNING",
)


@server.tool()
def add_note(text: str) -> str:
    """Add a note; returns its number."""
    if not text.strip():
        raise ToolError("text is empty: give the note some words")
    return f"Saved note {notes.add(text.strip())}"


@server.tool()
def list_notes() -> str:
    """Every note, numbered, one per line."""
    return "\n".join(notes.lines()) or EMPTY_TEXT


@server.tool()
def search_notes(query: str) -> str:
    """Notes containing `query` (case-insensitive)."""
    return "\n".join(notes.lines(query)) or f"No note contains {query!r}"


@server.resource(NOTES_URI, name="all-notes", description="Every note, one per line", mime_type="text/plain")
def all_notes() -> str:
    return "\n".join(notes.lines()) or EMPTY_TEXT


@server.prompt()
def summarize_notes() -> str:
    """Ask the model for a short summary of the notes."""
    body = "\n".join(notes.lines()) or EMPTY_TEXT
    return f"Summarize these notes in three bullet points or fewer:\n\n{body}"


if __name__ == "__main__":
    server.run("stdio")
