#!/usr/bin/env bash
# MCP clients that the identity tests drive against API-key profiles: the MCP Inspector (its --cli mode) and mcp-remote,
# installed into the git-ignored prefix .ci/node-extra/clients with the Node 22 of .ci/setup-node.sh.
# Idempotent: does nothing when both are present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PREFIX=.ci/node-extra/clients
if [ -x "$PREFIX/node_modules/.bin/mcp-inspector" ] && [ -x "$PREFIX/node_modules/.bin/mcp-remote" ]; then
    exit 0
fi
NODE_BIN="$PWD/.ci/node/node_modules/node/bin"
if [ ! -x "$NODE_BIN/node" ]; then
    echo "setup-mcp-clients.sh: Node 22 is missing at $NODE_BIN; run .ci/setup-node.sh first" >&2
    exit 1
fi
mkdir -p "$PREFIX"
PATH="$NODE_BIN:$PATH" npm install --silent --no-audit --no-fund --prefix "$PREFIX" \
    "@modelcontextprotocol/inspector@2.12.0" "mcp-remote@0.15.1"
