"""Whatever bytes the files hold, loading gives a Snapshot or a ConfigError, never anything else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_mcp_gateway.config import Snapshot, load_snapshot
from local_mcp_gateway.errors import ConfigError

KEYS = ["version", "servers", "command", "url", "module", "args", "env", "tools", "include", "prefix",
        "enabled", "default_profile", "security", "api_keys", "overrides", "name", "memory", "x"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
    st.sampled_from(["1", "npx", "${secret:a}", "${env:HOME}", "${", "https://a.example", "m:a", "*", "[", ""]),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=20,
)
documents = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(lambda d: yaml.safe_dump(d)),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(lambda d: yaml.safe_dump({**d, "version": 1})),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=3).map(
        lambda d: yaml.safe_dump({"servers": {"memory": d, "inline": {"command": "x", **d}}})
    ),
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(gateway: str, profile: str) -> object:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "profiles").mkdir()
        (root / "gateway.yaml").write_text(gateway, encoding="utf-8", errors="surrogateescape")
        (root / "profiles" / "p.yaml").write_text(profile, encoding="utf-8", errors="surrogateescape")
        try:
            return load_snapshot(root / "gateway.yaml", environ={"HOME": "/root"})
        except ConfigError as exc:
            assert exc.issues and all(str(issue) for issue in exc.issues)
            return exc


@SETTINGS
@given(documents)
def test_any_gateway_file(text: str) -> None:
    assert isinstance(_load(text, "servers: {}\n"), Snapshot | ConfigError)


@SETTINGS
@given(documents)
def test_any_profile_file(text: str) -> None:
    catalog = "version: 1\nservers:\n  memory: {command: npx}\n"
    assert isinstance(_load(catalog, text), Snapshot | ConfigError)
