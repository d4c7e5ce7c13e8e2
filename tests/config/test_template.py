"""Template: parsing references, rendering, use as a pydantic field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from local_mcp_gateway.config.template import Template, TemplateSyntaxError
from local_mcp_gateway.errors import ConfigError


def no_secrets(name: str) -> str:
    raise AssertionError(f"secret {name} was not expected")


def test_plain_text() -> None:
    t = Template("npx")
    assert t.is_plain and t.raw == "npx" and not t.secret_names and not t.env_names
    assert t.render(no_secrets, {}) == "npx"


def test_references_are_found_and_rendered() -> None:
    t = Template("Bearer ${secret:gh.token-1} for ${env:USER}")
    assert t.secret_names == frozenset({"gh.token-1"})
    assert t.env_names == frozenset({"USER"})
    assert not t.is_plain
    assert t.render(lambda n: f"<{n}>", {"USER": "ada"}) == "Bearer <gh.token-1> for ada"


def test_dollar_dollar_brace_is_a_literal() -> None:
    t = Template("cost $${secret:x} and $5 and $$")
    assert t.is_plain
    assert t.render(no_secrets, {}) == "cost ${secret:x} and $5 and $$"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("${secret:}", "empty name"),
        ("${env:}", "empty name"),
        ("${foo:bar}", "unknown reference kind 'foo'"),
        ("${secret}", "unknown reference kind 'secret'"),
        ("abc ${secret:x", "unclosed '${'"),
        ("${secret:../etc/passwd}", "secret names"),
        ("${secret:a/b}", "secret names"),
        ("${secret:a..b}", "secret names"),
        ("${secret:" + "a" * 129 + "}", "secret names"),
        ("${env:1ABC}", "environment variable names"),
    ],
)
def test_malformed_references_are_refused(raw: str, fragment: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=fragment.replace("$", r"\$").replace("{", r"\{").replace(".", r"\.")):
        Template(raw)


def test_unset_environment_variable_names_it() -> None:
    with pytest.raises(ConfigError, match=r"\{env:NOT_THERE\} is not set"):
        Template("${env:NOT_THERE}").render(no_secrets, {})


def test_equality_and_hash_by_raw_text() -> None:
    assert Template("a${env:X}") == Template("a${env:X}")
    assert len({Template("x"), Template("x"), Template("y")}) == 2
    assert Template("x") != "x"


class Holder(BaseModel):
    value: Template
    items: list[Template] = []


def test_pydantic_field_parses_strings_and_refuses_other_types() -> None:
    held = Holder.model_validate({"value": "${env:HOME}", "items": ["a"]})
    assert held.value.env_names == {"HOME"}
    assert held.model_dump() == {"value": "${env:HOME}", "items": ["a"]}
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate({"value": 8080})
    assert caught.value.errors()[0]["type"] == "string_type"
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate({"value": "ok", "items": ["${foo:x}"]})
    error = caught.value.errors()[0]
    assert error["type"] == "template" and error["loc"] == ("items", 0)


def test_json_schema_is_a_string() -> None:
    assert Holder.model_json_schema()["properties"]["value"] == {"title": "Value", "type": "string"}
