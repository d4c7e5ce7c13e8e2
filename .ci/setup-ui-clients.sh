#!/usr/bin/env bash
# Installs the MCP clients whose `client-config` snippets the tests run for real, each into its own git-ignored
# prefix .ci/node-extra/<name>, with the Node 22 of .ci/node first on PATH (run .ci/setup-node.sh first):
#
#   .ci/node-extra/inspector    @modelcontextprotocol/inspector (the Inspector CLI: `mcp-inspector --cli ...`)
#   .ci/node-extra/mcp-remote   mcp-remote (the stdio bridge the Claude Desktop snippet starts)
#
# Unpinned on purpose: the snippets say @latest, so the tests check what users get. Idempotent: a prefix that
# already holds its package is left alone (delete the prefix to update).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_bin="$repo_root/.ci/node/node_modules/node/bin"
if [[ ! -x "$node_bin/node" ]]; then
    echo "setup-ui-clients: $node_bin/node is missing; run .ci/setup-node.sh first" >&2
    exit 1
fi
export PATH="$node_bin:$PATH"

install() {
    local name="$1" package="$2" prefix="$repo_root/.ci/node-extra/$1"
    if [[ -f "$prefix/node_modules/$package/package.json" ]]; then
        return 0
    fi
    mkdir -p "$prefix"
    [[ -f "$prefix/package.json" ]] || echo '{"private": true}' > "$prefix/package.json"
    (cd "$prefix" && npm install --no-audit --no-fund --loglevel=error "$package" >/dev/null)
    echo "setup-ui-clients: installed $package into .ci/node-extra/$name"
}

install inspector @modelcontextprotocol/inspector
install mcp-remote mcp-remote
