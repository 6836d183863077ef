"""The suite's own secret check can fail, and sees what the drivers hand around."""

from __future__ import annotations

import pytest

import conftest
from tokenflow import Config, Credentials


class Leaky:
    def __repr__(self) -> str:
        return "Leaky(password=pw-joe)"


def test_the_check_flags_an_object_showing_a_known_secret() -> None:
    assert conftest.leaks(Leaky()) == ["pw-joe"]
    assert conftest.leaks(ValueError("token basic-secret")) == ["basic-secret"]
    assert conftest.leaks(Config("https://id.example/token", "app", client_secret="basic-secret")) == []


def test_tokens_handed_out_by_a_driver_become_known_secrets(stub) -> None:
    from tokenflow.requests import TokenAuth

    stub.answer_with(200, b'{"access_token":"AT-harvested-1","token_type":"Bearer","expires_in":60}')
    auth = TokenAuth(
        Config(stub.url + "/token", "basic-client", client_secret="basic-secret"),
        credentials=Credentials.password("joe", "pw-joe"),
    )
    auth.bearer()
    assert "AT-harvested-1" in conftest.SECRETS
    assert any(type(o).__name__ == "TokensUpdated" for o in conftest._observed.values())
