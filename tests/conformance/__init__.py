"""The official MCP conformance suite, run against the fixture server and the gateway."""
