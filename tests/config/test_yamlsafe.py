"""YAML reading: positions of keys and items, and every kind of file refused with its position."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from local_mcp_gateway.config.yamlsafe import MAX_FILE_BYTES, load_yaml, parse_yaml
from local_mcp_gateway.errors import ConfigError, ConfigIssue

F = Path("f.yaml")

# A parse must finish well within this, even for an alias bomb; generous for a loaded 2-core machine.
BOMB_DEADLINE_SECONDS = 10.0


def refusal(text: str | bytes) -> ConfigIssue:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text.encode() if isinstance(text, str) else text, F)
    assert len(caught.value.issues) == 1
    return caught.value.issues[0]


def test_values_and_positions() -> None:
    doc = parse_yaml(b"version: 1\nservers:\n  memory:\n    args: [-y, pkg]\n    on: yes\n", F)
    assert doc.data == {"version": 1, "servers": {"memory": {"args": ["-y", "pkg"], "on": True}}}
    assert doc.index == {
        "": (1, 1),
        "version": (1, 1),
        "servers": (2, 1),
        "servers.memory": (3, 3),
        "servers.memory.args": (4, 5),
        "servers.memory.args[0]": (4, 12),
        "servers.memory.args[1]": (4, 16),
        "servers.memory.on": (5, 5),
    }


def test_position_falls_back_to_the_nearest_written_parent() -> None:
    doc = parse_yaml(b"a:\n  b: 1\n", F)
    assert doc.position(("a", "b", "c", 0)) == (2, 3)


def test_anchors_and_merge_keys_work_within_bounds() -> None:
    doc = parse_yaml(b"base: &b {timeout_seconds: 5, enabled: true}\nx:\n  <<: *b\n  enabled: false\n", F)
    assert doc.data["x"] == {"timeout_seconds": 5, "enabled": False}


def test_dates_stay_text() -> None:
    assert parse_yaml(b"a: 2024-01-01\n", F).data == {"a": "2024-01-01"}


def test_malformed_yaml() -> None:
    issue = refusal("a: [1, 2\nb: 3\n")
    assert (issue.line, issue.column) == (2, 2)
    assert issue.message.startswith("YAML syntax: expected ',' or ']'")


def test_tab_indentation_names_the_line() -> None:
    issue = refusal("servers:\n  ok: {}\n\tbad: {}\n")
    assert (issue.line, issue.column, issue.message) == (3, 1, "tab used for indentation; YAML indents with spaces only")


def test_tabs_inside_block_text_are_content() -> None:
    assert parse_yaml(b"script: |\n  \techo hi\n", F).data == {"script": "\techo hi\n"}


def test_empty_file() -> None:
    issue = refusal("# only a comment\n")
    assert (issue.line, issue.column) == (1, 1)
    assert issue.message.startswith("file is empty")


def test_top_level_list() -> None:
    issue = refusal("- a\n- b\n")
    assert (issue.line, issue.column) == (1, 1)
    assert issue.message == "the top level is a list; it must be a mapping of keys (`key: value`)"


def test_duplicate_keys() -> None:
    issue = refusal("servers:\n  a: {}\n  b: {}\n  a: {}\n")
    assert (issue.line, issue.column, issue.path) == (4, 3, "servers.a")
    assert issue.message == "duplicate key 'a' (first at line 2); remove one of them"


def test_non_utf8_bytes() -> None:
    issue = refusal(b"a: 1\nb: caf\xe9\n")
    assert (issue.line, issue.column, issue.message) == (2, 7, "not valid UTF-8 text; save the file as UTF-8")


def test_python_tags_are_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    issue = refusal(f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    assert not marker.exists()
    assert (issue.line, issue.column, issue.path) == (1, 4, "a")
    assert issue.message.startswith("tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed")


def test_custom_tags_and_binary_are_refused() -> None:
    assert refusal("a: {b: [c, !env X]}\n").message.startswith("tag '!env' is not allowed")
    assert refusal("a: !!binary aGk=\n").message.startswith("tag 'tag:yaml.org,2002:binary' is not allowed")


def test_alias_bomb_is_refused_fast() -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    started = time.monotonic()
    issue = refusal("\n".join(lines) + "\n")
    assert time.monotonic() - started < BOMB_DEADLINE_SECONDS
    assert issue.message.startswith("too many values (more than 100000, counting alias expansions)")


def test_self_referencing_anchor_is_refused() -> None:
    issue = refusal("a: &x [*x]\n")
    assert (issue.line, issue.column) == (1, 4)
    assert issue.message.startswith("nested deeper than 64 levels")


def test_mapping_as_key_is_refused() -> None:
    issue = refusal("? [a, b]\n: 1\n")
    assert (issue.line, issue.column) == (1, 3)
    assert issue.message == "a key must be a plain name, not a list or mapping"


def test_file_over_one_mebibyte(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * MAX_FILE_BYTES + b"\n")
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_yaml(path)


def test_directory_named_like_a_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a directory, not a YAML file"):
        load_yaml(tmp_path / "x.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_yaml(path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.yaml"
    path.write_text("version: 1\n")
    path.chmod(0)
    if os.geteuid() != 0:  # root reads whatever the mode; the next file fails for everyone
        with pytest.raises(ConfigError, match="cannot read: Permission denied; check its permissions"):
            load_yaml(path)


def test_file_whose_read_fails(tmp_path: Path) -> None:
    # A regular file that no one can read: the start of a process's memory is never mapped (EIO).
    path = tmp_path / "mem.yaml"
    path.symlink_to("/proc/self/mem")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    issue = caught.value.issues[0]
    assert (issue.file, issue.message) == (path, "cannot read: Input/output error; check its permissions")
