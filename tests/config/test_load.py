"""load_snapshot: whole config folders, good and bad, with the exact position of every issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_mcp_gateway.config import load_snapshot
from local_mcp_gateway.errors import ConfigError

from cfgrepo import Repo


def test_minimal_config_loads_with_defaults(repo: Repo) -> None:
    repo.write("profiles/demo.yaml", "servers: {}\n")
    snap = repo.load()
    assert snap.gateway.listen.port == 8080
    assert snap.root == repo.root and snap.config_path == repo.config
    assert snap.profiles_dir == repo.root / "profiles"
    assert snap.secrets_dir == repo.root / "secrets"
    assert snap.state_dir == repo.root / "state"
    assert list(snap.profiles) == ["demo"]
    with pytest.raises(TypeError):
        snap.profiles["x"] = snap.profiles["demo"]  # type: ignore[index]


def test_catalog_reference_merges_overrides_and_inline_servers_stand_alone(repo: Repo) -> None:
    repo.write(
        "gateway.yaml",
        """
        version: 1
        servers:
          memory:
            command: npx
            args: [-y, "@modelcontextprotocol/server-memory"]
            timeout_seconds: 30
            tools: {exclude: [delete_*]}
          mem2: {url: "https://x.example/mcp"}
        """,
    )
    repo.write(
        "profiles/work.yaml",
        """
        servers:
          memory:
            prefix: mem
            isolation: per_session
            tools: {include: [read_*]}
          scratch:
            command: python
            args: [-m, scratch]
            cwd: work
            enabled: false
          mem2: {}
        """,
    )
    snap = repo.load()
    memory, scratch, mem2 = snap.profiles["work"].servers
    assert (memory.name, memory.prefix, memory.inline, memory.file, memory.line) == ("memory", "mem", False, repo.config, 3)
    assert memory.config.timeout_seconds == 30 and memory.config.isolation == "per_session"
    assert memory.config.tools.include == ["read_*"] and memory.config.tools.exclude == []
    assert memory.config.args[1].raw == "@modelcontextprotocol/server-memory"
    assert (scratch.inline, scratch.prefix, scratch.config.enabled) == (True, "scratch", False)
    assert scratch.config.cwd == str(repo.root / "work")
    assert scratch.file == repo.root / "profiles" / "work.yaml" and scratch.line == 6
    assert mem2.config.kind == "remote"
    assert snap.gateway.servers["memory"].tools.exclude == ["delete_*"]  # the catalog is untouched


def test_null_entry_refers_to_the_catalog_server(repo: Repo) -> None:
    repo.write("gateway.yaml", "version: 1\nservers:\n  clock: {module: 'pkg.mod:server'}\n")
    repo.write("profiles/p.yaml", "servers:\n  clock:\n")
    assert repo.load().profiles["p"].servers[0].config.module == "pkg.mod:server"


def test_relative_dirs_are_taken_from_the_config_folder(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("gateway.yaml", "version: 1\nprofiles_dir: p\nsecrets_dir: ../shared-secrets\n")
    repo.write("p/a.yml", "description: A\n")
    monkeypatch.chdir(tmp_path)
    snap = load_snapshot(Path("config/gateway.yaml"), environ={})
    assert snap.profiles_dir == repo.root / "p"
    assert snap.secrets_dir == tmp_path / "shared-secrets"
    assert snap.profiles["a"].description == "A"


def test_digest_follows_the_content(repo: Repo) -> None:
    repo.write("profiles/a.yaml", "description: one\n")
    first = repo.load().digest
    assert repo.load().digest == first
    repo.write("profiles/a.yaml", "description: two\n")
    assert repo.load().digest != first


def test_wrong_types_point_at_the_key(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write(
        "gateway.yaml",
        """
        version: 1
        listen:
          port: eighty
        servers:
          gh:
            url: https://api.example/mcp
            timeout_seconds: 0
            tools:
              include: "get_*"
        logging:
          level: verbose
        """,
    )
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (("gateway.yaml", 3, 3, "listen.port"), "expected a whole number"),
        (("gateway.yaml", 7, 5, "servers.gh.timeout_seconds"), "must be greater than 0"),
        (("gateway.yaml", 9, 7, "servers.gh.tools.include"), 'expected a list of globs, e.g. ["get_*"]'),
        (("gateway.yaml", 11, 3, "logging.level"), "expected 'debug', 'info', 'warning' or 'error', got 'verbose'"),
    ]


def test_numbers_where_strings_are_expected(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nservers:\n  s:\n    command: srv\n    args: [--port, 8080]\n")
    issue = repo.only_issue()
    assert at(issue) == ("gateway.yaml", 5, 20, "servers.s.args[1]")
    assert issue.message == 'expected a string; put numbers and booleans in quotes, e.g. "8080"'


def test_unknown_keys_suggest_the_right_one(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nlisten:\n  hots: 0.0.0.0\n")
    repo.write("profiles/p.yaml", "servers: {}\napi_key: []\n")
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (("gateway.yaml", 3, 3, "listen.hots"), "unknown key 'hots'; did you mean 'host'? allowed keys: host, port"),
        (
            ("profiles/p.yaml", 2, 1, "api_key"),
            "unknown key 'api_key'; did you mean 'api_keys'? allowed keys: description, servers, api_keys, lock, oauth, access",
        ),
    ]


def test_missing_version(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "listen: {port: 9000}\n")
    issue = repo.only_issue()
    assert (at(issue), issue.message) == (("gateway.yaml", 1, 1, ""), "required key 'version' is missing")


def test_wrong_version(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 2\n")
    issue = repo.only_issue()
    assert (at(issue), issue.message) == (("gateway.yaml", 1, 1, "version"), "expected 1, got 2")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("description: nothing\n", "a server needs one of command (stdio), url (remote) or module (in-process)"),
        (
            "command: x\n    url: https://a.example\n",
            "a server has exactly one of command, url or module; remove all but one of command, url",
        ),
        (
            "command: x\n    module: a.b:c\n",
            "a server has exactly one of command, url or module; remove all but one of command, module",
        ),
    ],
)
def test_a_catalog_server_needs_exactly_one_kind(repo: Repo, at, body: str, message: str) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", f"version: 1\nservers:\n  bad:\n    {body}")
    issue = repo.only_issue()
    assert (at(issue), issue.message) == (("gateway.yaml", 3, 3, "servers.bad"), message)


def test_an_inline_server_with_two_kinds(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("profiles/p.yaml", "servers:\n  both:\n    url: https://a.example\n    module: a.b:c\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 2, 3, "servers.both")
    assert issue.message == "a server has exactly one of command, url or module; remove all but one of url, module"


def test_reference_to_a_missing_catalog_server(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nservers:\n  memory: {command: npx}\n")
    repo.write("profiles/p.yaml", "servers:\n  memroy: {}\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 2, 3, "servers.memroy")
    assert issue.message == (
        "no server 'memroy' in the catalog (servers: in gateway.yaml) (did you mean 'memory'?); add it there, "
        "or give it command, url or module to define it here"
    )


def test_reference_may_only_override_some_keys(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nservers:\n  memory: {command: npx}\n")
    repo.write("profiles/p.yaml", "servers:\n  memory:\n    enabled: false\n    args: [x]\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 4, 5, "servers.memory.args")
    assert issue.message.startswith(
        "'memory' refers to the catalog server in gateway.yaml, so only prefix, enabled, timeout_seconds, isolation, "
        "tools can be set here; change args in gateway.yaml"
    )


def test_inline_server_must_not_shadow_the_catalog(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nservers:\n  memory: {command: npx}\n")
    repo.write("profiles/p.yaml", "servers:\n  memory: {command: other}\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 2, 3, "servers.memory")
    assert issue.message.startswith("inline server 'memory' has the name of a catalog server in gateway.yaml")


def test_duplicate_slugs(repo: Repo) -> None:
    repo.write("profiles/work.yaml", "servers: {}\n")
    repo.write("profiles/work.yml", "servers: {}\n")
    issue = repo.only_issue()
    assert issue.file == repo.root / "profiles" / "work.yml"
    assert issue.message == "profile 'work' is defined twice, by work.yaml and work.yml; remove one"


@pytest.mark.parametrize("name", ["Work", "-x", "a b", "x" * 65])
def test_bad_slug(repo: Repo, name: str) -> None:
    repo.write(f"profiles/{name}.yaml", "servers: {}\n")
    issue = repo.only_issue()
    assert issue.file == repo.root / "profiles" / f"{name}.yaml"
    assert issue.message.startswith(f"'{name}' is not a valid profile name: rename the file to lowercase letters")


def test_directory_named_like_a_profile(repo: Repo) -> None:
    (repo.root / "profiles" / "x.yaml").mkdir()
    issue = repo.only_issue()
    assert (issue.file, issue.message) == (
        repo.root / "profiles" / "x.yaml",
        "is a directory, not a YAML file; rename or remove it",
    )


def test_empty_profile_and_top_level_list(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("profiles/a.yaml", "")
    repo.write("profiles/b.yaml", "- memory\n")
    a, b = repo.issues()
    assert at(a) == ("profiles/a.yaml", 1, 1, "") and a.message.startswith("file is empty")
    assert at(b) == ("profiles/b.yaml", 1, 1, "") and b.message.startswith("the top level is a list")


def test_missing_gateway_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_snapshot(tmp_path / "gateway.yaml", environ={})
    assert caught.value.issues[0].message.startswith("file not found")


def test_every_issue_is_reported_at_once(repo: Repo) -> None:
    repo.write("gateway.yaml", "version: 1\ndefault_profile: nope\nlogging: {format: xml}\n")
    repo.write("profiles/a.yaml", "servers:\n  x: {}\n")
    repo.write("profiles/b.yaml", "servers: [x]\n")
    messages = [str(i).removeprefix(str(repo.root) + "/") for i in repo.issues()]
    assert messages == [
        "gateway.yaml:3:11: logging.format: expected 'text' or 'json', got 'xml'",
        "profiles/b.yaml:1:1: servers: expected a mapping of `key: value` entries",
        "profiles/a.yaml:2:3: servers.x: no server 'x' in the catalog (servers: in gateway.yaml); add it there, "
        "or give it command, url or module to define it here",
    ]


def test_missing_profiles_folder_is_a_warning(repo: Repo) -> None:
    (repo.root / "profiles").rmdir()
    snap = repo.load()
    assert snap.profiles == {}
    assert snap.warnings[0].message.startswith("profiles folder does not exist")
