"""Client-visible names: prefixing, sanitising, shortening; glob filters."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from local_mcp_gateway.naming import client_name, matches


def test_prefix_joins_with_two_underscores() -> None:
    assert client_name("github", "get_me") == "github__get_me"


def test_empty_prefix_keeps_the_name() -> None:
    assert client_name("", "get_me") == "get_me"


def test_unsafe_characters_become_underscores() -> None:
    assert client_name("my.server", "read file/now") == "my_server__read_file_now"


def test_sixty_four_characters_are_kept_as_they_are() -> None:
    name = "a" * 56
    assert client_name("abcdef", name) == "abcdef__" + name
    assert len(client_name("abcdef", name)) == 64


def test_longer_names_are_cut_and_end_in_a_hash_of_the_full_name() -> None:
    name = "x" * 60
    joined = f"srv__{name}"
    expected = joined[:55] + "_" + hashlib.sha256(joined.encode()).hexdigest()[:8]
    assert client_name("srv", name) == expected
    assert len(expected) == 64


def test_the_hash_covers_the_unsanitised_name() -> None:
    assert client_name("s", "a.b" + "c" * 70) != client_name("s", "a_b" + "c" * 70)


@given(st.text(max_size=80), st.text(min_size=1, max_size=200))
def test_names_are_short_safe_and_stable(prefix: str, name: str) -> None:
    result = client_name(prefix, name)
    assert len(result) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in result)
    assert result == client_name(prefix, name)


def test_matches_include_then_exclude() -> None:
    assert matches("get_me", ["*"], [])
    assert matches("get_me", ["get_*"], ["delete_*"])
    assert not matches("delete_repo", ["*"], ["delete_*"])
    assert not matches("push", ["get_*"], [])
    assert not matches("anything", [], [])


def test_matches_is_case_sensitive() -> None:
    assert not matches("Get_me", ["get_*"], [])
