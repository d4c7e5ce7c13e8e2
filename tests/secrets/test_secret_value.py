"""`Secret` and `Identity` never show what they hold."""

from __future__ import annotations

import copy
import pickle

import pytest
from pydantic import BaseModel

from local_mcp_gateway.secrets import Identity, Secret

VALUE = "tok-4b1d9c0e77"


class Holder(BaseModel):
    token: Secret


def test_secret_hides_its_value_in_every_rendering() -> None:
    secret = Secret(VALUE)
    renderings = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}", "%s" % secret,
                  repr([secret]), repr({"k": secret})]
    assert repr(secret) == "Secret('**********')"
    assert all(VALUE not in text for text in renderings)
    assert secret.reveal() == VALUE


def test_secret_in_a_pydantic_model_dumps_masked() -> None:
    holder = Holder(token=VALUE)
    assert holder.token.reveal() == VALUE
    for dumped in (repr(holder), str(holder.model_dump()), holder.model_dump_json(),
                   str(holder.model_dump(mode="json"))):
        assert VALUE not in dumped
    assert holder.model_dump(mode="json") == {"token": "**********"}
    assert Holder.model_json_schema()["properties"]["token"]["writeOnly"] is True


def test_secret_equality_and_hash_follow_the_value() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + "x")
    assert len({Secret(VALUE), Secret(VALUE), Secret("other-value")}) == 2
    assert Secret(VALUE) != VALUE  # a Secret is not a str


def test_secret_refuses_pickling_and_copies_as_itself() -> None:
    secret = Secret(VALUE)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert copy.deepcopy(secret) is secret


def test_secret_needs_a_string() -> None:
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_identity_hides_the_private_key() -> None:
    identity = Identity.generate()
    key = identity.reveal()
    assert key.startswith("AGE-SECRET-KEY-1")
    assert identity.recipient.startswith("age1")
    for text in (repr(identity), str(identity), f"{identity}"):
        assert key not in text
        assert identity.recipient in text
