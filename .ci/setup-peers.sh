#!/usr/bin/env bash
# Installs the peer proxies that bench/peers.py (and its quick test, tests/bench/test_peers.py) measures the
# gateway against, into the git-ignored cache bench/.peers (run .ci/setup-node.sh first: mcp-hub is installed
# with the Node 22 of .ci/node first on PATH):
#
#   bench/.peers/mcp-proxy   a venv with mcp-proxy 0.13.0 (PyPI; it pins mcp 1.x, so not the project venv)
#   bench/.peers/fastmcp     a venv with fastmcp 4.2.3 (PyPI)
#   bench/.peers/mcp-hub     an npm prefix with mcp-hub 4.2.1
#
# Idempotent: a peer already installed at its pinned version is left alone. The pins live in bench/_peer_targets.py.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
[[ -x "$repo_root/.venv/bin/python" ]] && python="$repo_root/.venv/bin/python"
"$python" "$repo_root/bench/peers.py" --install-only
