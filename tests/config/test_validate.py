"""Static checks: references, commands, globs, keys that do not fit the kind, client-visible names."""

from __future__ import annotations

from cfgrepo import Repo

CATALOG = """
version: 1
servers:
  github:
    url: https://api.example/mcp
    headers: {Authorization: "Bearer ${secret:github_token}"}
"""


def test_missing_secret_file(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", CATALOG)
    issue = repo.only_issue()
    assert at(issue) == ("gateway.yaml", 5, 15, "servers.github.headers.Authorization")
    assert issue.message == (
        "secret 'github_token' not found: secrets/github_token.age does not exist; "
        "create it with `local-mcp-gateway secret set github_token`"
    )
    repo.write_bytes("secrets/github_token.age", b"age-encryption.org/v1\n")
    assert repo.load().gateway.servers["github"].headers["Authorization"].secret_names == {"github_token"}


def test_secret_references_in_profiles_and_keys(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("profiles/p.yaml", 'servers: {}\napi_keys: ["${secret:p_key}"]\n')
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 2, 12, "api_keys[0]")
    assert issue.message.startswith("secret 'p_key' not found: secrets/p_key.age does not exist")


def test_unset_environment_variable(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("profiles/p.yaml", "servers:\n  s:\n    command: srv\n    env: {HOME_DIR: '${env:SRV_HOME}'}\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 4, 11, "servers.s.env.HOME_DIR")
    assert issue.message == "environment variable SRV_HOME is not set; set it before starting the gateway"
    assert repo.load({"SRV_HOME": "/srv"}).profiles["p"].servers[0].config.env["HOME_DIR"].env_names == {"SRV_HOME"}


def test_default_profile_must_exist(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\ndefault_profile: demo\n")
    repo.write("profiles/work.yaml", "servers: {}\n")
    issue = repo.only_issue()
    assert at(issue) == ("gateway.yaml", 2, 1, "default_profile")
    assert issue.message == (
        "no profile 'demo': profiles/demo.yaml does not exist (profiles: work); create it or change default_profile"
    )


def test_allowed_commands(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write(
        "gateway.yaml",
        """
        version: 1
        security:
          allowed_commands: [python*, /usr/bin/node]
        servers:
          a: {command: python3}
          b: {command: /opt/venv/bin/python}
          c: {command: /usr/bin/node}
          d: {command: npx}
        """,
    )
    first, second = repo.issues()
    # A name in allowed_commands is the program PATH finds for it, not any file with that name.
    assert at(first) == ("gateway.yaml", 6, 7, "servers.b.command")
    assert first.message.startswith("'/opt/venv/bin/python' runs /opt/venv/bin/python, which is not allowed")
    assert at(second) == ("gateway.yaml", 8, 7, "servers.d.command")
    assert second.message == (
        "'npx' is not allowed by security.allowed_commands (python*, /usr/bin/node); "
        "add a glob for it there, or use an allowed command"
    )


def test_allowed_commands_cover_inline_servers(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nsecurity: {allowed_commands: [uvx]}\n")
    repo.write("profiles/p.yaml", "servers:\n  s: {command: bash, args: [-c, 'rm -rf /'], enabled: false}\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 2, 7, "servers.s.command")


def test_glob_sanity(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nsecurity: {allowed_hosts: ['localhost:*', ' x']}\n")
    repo.write("profiles/p.yaml", "servers:\n  s:\n    module: a.b:c\n    tools: {include: ['get_[a-z', '']}\n")
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (("profiles/p.yaml", 4, 35, "servers.s.tools.include[1]"), "must not be empty"),
        (("gateway.yaml", 2, 43, "security.allowed_hosts[1]"), "host has leading or trailing spaces; remove them"),
    ]
    repo.write("profiles/p.yaml", "servers:\n  s:\n    module: a.b:c\n    tools: {include: ['get_[a-z', '[!]]x']}\n")
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (("profiles/p.yaml", 4, 23, "servers.s.tools.include[0]"), "glob has an unclosed '['; write '[[]' to match a literal '['"),
        (("gateway.yaml", 2, 43, "security.allowed_hosts[1]"), "host has leading or trailing spaces; remove them"),
    ]


def test_keys_that_do_not_fit_the_kind(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write(
        "gateway.yaml",
        """
        version: 1
        servers:
          a:
            module: pkg.mod:server
            args: [x]
          b:
            command: srv
            transport: sse
            oauth: {}
        """,
    )
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (("gateway.yaml", 5, 5, "servers.a.args"), "args applies only to stdio servers (command: ...); this one is inprocess (module: ...), remove args"),
        (("gateway.yaml", 8, 5, "servers.b.transport"), "transport applies only to remote servers (url: ...); this one is stdio (command: ...), remove transport"),
        (("gateway.yaml", 9, 5, "servers.b.oauth"), "oauth applies only to remote servers (url: ...); this one is stdio (command: ...), remove oauth"),
    ]


def test_bad_module_url_prefix_and_recipient(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write(
        "gateway.yaml",
        """
        version: 1
        secrets: {recipients: [age1short]}
        servers:
          a: {module: "not a module"}
          b: {url: "ftp://files.example"}
          c: {url: "https://x.example", prefix: "my.prefix"}
        """,
    )
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (("gateway.yaml", 2, 24, "secrets.recipients[0]"), "expected an age recipient: 'age1' and 58 more characters; `local-mcp-gateway keygen` prints one"),
        (("gateway.yaml", 4, 7, "servers.a.module"), "expected 'package.module:attribute', e.g. 'local_mcp_gateway.examples.clock:server'"),
        (("gateway.yaml", 6, 33, "servers.c.prefix"), "a prefix uses letters, digits, '_' and '-' only, at most 52 characters (or \"\" for none)"),
    ]
    repo.write("gateway.yaml", "version: 1\nservers:\n  b: {url: 'ftp://files.example'}\n")
    issue = repo.only_issue()
    assert (at(issue), issue.message) == (("gateway.yaml", 3, 7, "servers.b.url"), "url must start with http:// or https://")


def test_two_overrides_giving_one_name_in_a_profile(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write(
        "gateway.yaml",
        """
        version: 1
        servers:
          gh:
            url: https://api.example/mcp
            prefix: ""
            tools:
              overrides:
                get_me: {name: whoami}
        """,
    )
    repo.write(
        "profiles/p.yaml",
        """
        servers:
          gh: {}
          local:
            module: pkg.mod:server
            prefix: ""
            tools:
              overrides:
                who: {name: whoami}
                whoami: {description: also whoami}
        """,
    )
    issues = repo.issues()
    assert [(at(i), i.message) for i in issues] == [
        (
            ("profiles/p.yaml", 8, 9, "servers.local.tools.overrides.who"),
            "clients would see 'whoami' for both server 'gh' tool 'get_me' and server 'local' tool 'who'; "
            "rename one with overrides.<tool>.name or change a prefix",
        ),
        (
            ("profiles/p.yaml", 9, 9, "servers.local.tools.overrides.whoami"),
            "clients would see 'whoami' for both server 'gh' tool 'get_me' and server 'local' tool 'whoami'; "
            "rename one with overrides.<tool>.name or change a prefix",
        ),
    ]


def test_disabled_servers_do_not_clash_and_stay_in_the_snapshot(repo: Repo) -> None:
    repo.write(
        "profiles/p.yaml",
        """
        servers:
          a: {module: "m:a", prefix: "", tools: {overrides: {x: {name: same}}}}
          b: {module: "m:b", prefix: "", enabled: false, tools: {overrides: {y: {name: same}}}}
        """,
    )
    servers = repo.load().profiles["p"].servers
    assert [(s.name, s.config.enabled) for s in servers] == [("a", True), ("b", False)]


def test_long_default_prefix_is_refused(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    name = "s" * 53
    repo.write("profiles/p.yaml", f"servers:\n  {name}: {{module: 'm:a'}}\n")
    issue = repo.only_issue()
    assert at(issue) == ("profiles/p.yaml", 2, 3, f"servers.{name}")
    assert issue.message.startswith("the prefix 'ssssssssssssssssssss...' is 53 characters")
    repo.write("profiles/p.yaml", f"servers:\n  {name}: {{module: 'm:a', prefix: short}}\n")
    assert repo.load().profiles["p"].servers[0].prefix == "short"


def test_warnings_do_not_stop_loading(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write("gateway.yaml", "version: 1\nsecurity: {api_keys: [plain-text-key]}\n")
    repo.write(
        "profiles/p.yaml",
        """
        servers:
          gh:
            url: https://api.example/mcp
            tools:
              include: [gh__get_*]
              overrides: {delete: {name: remove}}
          gh2:
            url: https://api.example/mcp
            prefix: gh
            tools: {include: []}
        """,
    )
    warnings = repo.load().warnings
    assert [(at(w), w.message) for w in warnings] == [
        (("profiles/p.yaml", 6, 19, "servers.gh.tools.overrides.delete"), "override of 'delete' has no effect: include/exclude hide that tool"),
        (("profiles/p.yaml", 10, 13, "servers.gh2.tools.include"), "include is empty, so no tool of this server is shown"),
        (
            ("gateway.yaml", 2, 23, "security.api_keys[0]"),
            "API key written in plain text ends up in git; store it with `local-mcp-gateway secret set NAME` and write ${secret:NAME}",
        ),
        (("profiles/p.yaml", 5, 17, "servers.gh.tools.include[0]"), "globs match upstream names, without the prefix 'gh__'; this glob probably matches nothing"),
        (
            ("profiles/p.yaml", 7, 3, "servers.gh2"),
            "shares the prefix 'gh' with server 'gh'; tools with the same name clash and the first server wins; set a different prefix",
        ),
    ]
    assert all("plain-text-key" not in str(w) for w in warnings)
