#!/usr/bin/env bash
# Installs the Node.js tooling the conformance tests and the Node example upstreams need,
# into .ci/node (git-ignored), using the machine's npm and nothing but the npm registry.
#
#   .ci/node          node@22 (a Node 22 binary as an npm package), the stable conformance suite,
#                     @modelcontextprotocol/server-everything, @modelcontextprotocol/server-memory
#   .ci/node/next     the pre-release conformance suite (2026-07-28 protocol line); a second npm
#                     prefix because one prefix cannot hold two versions of one package
#
# Idempotent: a prefix whose packages are already at the pinned versions is left alone.
# Override the versions with the environment variables below when moving to newer releases.
set -euo pipefail

NODE_PACKAGE="${NODE_PACKAGE:-node@22}"
CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.1.16}"
CONFORMANCE_NEXT_VERSION="${CONFORMANCE_NEXT_VERSION:-0.2.0-alpha.12}"
# Unpinned on purpose (the newest release is what users of the examples get); names only.
SERVER_EVERYTHING="@modelcontextprotocol/server-everything"
SERVER_MEMORY="@modelcontextprotocol/server-memory"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo_root/.ci/node"
next_prefix="$prefix/next"

if ! command -v npm >/dev/null 2>&1; then
    echo "setup-node: npm is not installed; install Node.js (any version with npm >= 9) first" >&2
    exit 1
fi

# Prints the version of an installed package under a prefix, or nothing.
installed_version() {
    local dir="$1" package="$2" manifest
    manifest="$dir/node_modules/$package/package.json"
    [[ -f "$manifest" ]] || return 0
    sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

# npm install into a prefix; a prefix needs a package.json so npm does not walk up to the repo.
npm_install() {
    local dir="$1"
    shift
    mkdir -p "$dir"
    [[ -f "$dir/package.json" ]] || printf '{\n  "name": "ci-node-tools",\n  "private": true\n}\n' >"$dir/package.json"
    npm install --prefix "$dir" --save-exact --no-audit --no-fund --loglevel=error "$@"
}

node_major() {
    local bin="$prefix/node_modules/node/bin/node"
    [[ -x "$bin" ]] && "$bin" --version | sed -n 's/^v\([0-9]*\)\..*/\1/p'
}

main_ready() {
    [[ "$(node_major)" == "22" ]] \
        && [[ "$(installed_version "$prefix" @modelcontextprotocol/conformance)" == "$CONFORMANCE_VERSION" ]] \
        && [[ -n "$(installed_version "$prefix" "$SERVER_EVERYTHING")" ]] \
        && [[ -n "$(installed_version "$prefix" "$SERVER_MEMORY")" ]]
}

next_ready() {
    [[ "$(installed_version "$next_prefix" @modelcontextprotocol/conformance)" == "$CONFORMANCE_NEXT_VERSION" ]]
}

if main_ready; then
    echo "setup-node: $prefix already has $NODE_PACKAGE and conformance@$CONFORMANCE_VERSION"
else
    echo "setup-node: installing into $prefix"
    npm_install "$prefix" "$NODE_PACKAGE" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
        "$SERVER_EVERYTHING" "$SERVER_MEMORY"
fi

if next_ready; then
    echo "setup-node: $next_prefix already has conformance@$CONFORMANCE_NEXT_VERSION"
else
    echo "setup-node: installing into $next_prefix"
    npm_install "$next_prefix" "@modelcontextprotocol/conformance@$CONFORMANCE_NEXT_VERSION"
fi

main_ready || { echo "setup-node: $prefix is incomplete after install" >&2; exit 1; }
next_ready || { echo "setup-node: $next_prefix is incomplete after install" >&2; exit 1; }

echo "node (22):            $prefix/node_modules/node/bin/node ($("$prefix/node_modules/node/bin/node" --version))"
echo "conformance $CONFORMANCE_VERSION:   $prefix/node_modules/.bin/conformance"
echo "conformance $CONFORMANCE_NEXT_VERSION: $next_prefix/node_modules/.bin/conformance"
echo "server-everything:    $prefix/node_modules/.bin/mcp-server-everything"
echo "server-memory:        $prefix/node_modules/.bin/mcp-server-memory"
echo "Use: PATH=$prefix/node_modules/node/bin:\$PATH $prefix/node_modules/.bin/conformance server --url URL"
