"""The file store: atomic, owner-only, and silent about what it holds."""

from __future__ import annotations

import os
import stat

import pytest

import tokenflow
from tokenflow import Config, Credentials, TokenFlow


def tokens(access: str, refresh: str) -> tokenflow.StoredTokens:
    """Tokens as the flow produces them, from a scripted answer."""
    config = Config("https://id.example/token", "app", client_secret="basic-secret")
    flow = TokenFlow(config, 7, 1_000, 1_700_000_000_000)
    flow.login(1_000, Credentials.password("joe", "pw-joe"))
    request = flow.poll_output()
    body = f'{{"access_token":"{access}","token_type":"Bearer","expires_in":60,"refresh_token":"{refresh}"}}'
    flow.handle_response(2_000, request.id, 200, [("content-type", "application/json")], body.encode())
    updated = flow.poll_output()
    return updated.tokens


def test_save_replaces_the_file_atomically_readable_by_its_owner_only(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    store = tokenflow.FileStore(path)
    assert store.load() is None
    store.save(tokens("AT-one", "RT-one"))
    store.save(tokens("AT-two", "RT-two"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.load().expose_refresh_token() == "RT-two"
    assert os.listdir(tmp_path) == ["tokens.json"], "no temporary file left behind"
    store.clear()
    assert store.load() is None and os.listdir(tmp_path) == []
    store.clear()  # clearing nothing is fine


def test_a_corrupt_file_is_a_typed_error_quoting_nothing_and_left_alone(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    path.write_bytes(b'{"version":1,"grant":"password","access_token":"AT secret with spaces"')
    with pytest.raises(tokenflow.StoredTokensError) as raised:
        tokenflow.FileStore(path).load()
    assert "secret" not in str(raised.value) and "AT" not in repr(raised.value)
    assert path.exists()


def test_stored_tokens_show_no_token() -> None:
    stored = tokens("AT-shown-nowhere", "RT-shown-nowhere")
    text = repr(stored) + str(stored)
    assert "shown-nowhere" not in text
    assert stored.has_refresh_token and stored.grant == "password"
    assert tokenflow.StoredTokens.from_json(stored.to_json()).expose_access_token() == "AT-shown-nowhere"


def test_user_stores_follow_the_protocol() -> None:
    assert isinstance(tokenflow.MemoryStore(), tokenflow.TokenStore)
    assert isinstance(tokenflow.FileStore("x"), tokenflow.TokenStore)
