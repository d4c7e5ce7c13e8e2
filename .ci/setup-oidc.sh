#!/usr/bin/env bash
# A real OpenID provider for the identity tests: npm `oidc-provider` 9.x, installed into the git-ignored prefix
# .ci/node-extra/oidc with the Node 22 that .ci/setup-node.sh provides. Idempotent: does nothing when present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PREFIX=.ci/node-extra/oidc
VERSION="${OIDC_PROVIDER_VERSION:-9}"
if [ -f "$PREFIX/node_modules/oidc-provider/package.json" ]; then
    exit 0
fi
NODE_BIN="$PWD/.ci/node/node_modules/node/bin"
if [ ! -x "$NODE_BIN/node" ]; then
    echo "setup-oidc.sh: Node 22 is missing at $NODE_BIN; run .ci/setup-node.sh first" >&2
    exit 1
fi
mkdir -p "$PREFIX"
PATH="$NODE_BIN:$PATH" npm install --silent --no-audit --no-fund --prefix "$PREFIX" "oidc-provider@$VERSION"
