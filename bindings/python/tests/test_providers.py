"""The three provider dialects, through httpx (sync and async) and requests, against the
repository's Node test servers."""

from __future__ import annotations

import time

import pytest

import tokenflow
from tokenflow import Config, Credentials

import servers
from conftest import RecordingStore

SCOPE_RESOURCE_OWNER = "qflowapi openid offline_access"


def resource_owner_config(server: servers.RunningServer, **settings: object) -> Config:
    client_id, secret = servers.POST_CLIENT
    return Config(
        server.token_endpoint,
        client_id,
        client_secret=secret,
        client_auth="client_secret_post",
        scope=SCOPE_RESOURCE_OWNER,
        **settings,  # type: ignore[arg-type]
    )


def test_identityserver_password_login(start_server, make_driver) -> None:
    server = start_server("oidc.js")
    client_id, secret = servers.BASIC_CLIENT
    config = Config(
        server.token_endpoint, client_id, client_secret=secret, scope="datahub-api offline_access"
    )
    assert config.client_auth == "client_secret_basic"
    driver = make_driver(server.issuer, config, credentials=Credentials.password(*servers.JOE))
    status, body = driver.get(server.resource_url)
    assert (status, body["sub"], body["client_id"]) == (200, "joe", client_id)
    assert server.stats()["token_requests"] == {"password": 1}


def test_resource_owner_login_with_a_pin_style_username(start_server, make_driver, tmp_path) -> None:
    server = start_server("oauth2-server.js")
    store = RecordingStore(tmp_path / "tokens.json")
    driver = make_driver(
        server.issuer,
        resource_owner_config(server),
        credentials=lambda: Credentials.password(*servers.PIN_USER),
        store=store,
    )
    for _ in range(3):
        status, body = driver.get(server.resource_url)
        assert (status, body["sub"]) == (200, "1234/joe.bloggs@acme.com")
    assert server.stats()["token_requests"] == {"password": 1}
    assert len(store.saves) == 1 and store.saves[0][2] is not None  # a refresh token


def test_gateway_client_credentials_with_grant_type_in_the_query(start_server, make_driver) -> None:
    server = start_server("oauth2-server.js", grantTypeInQuery=True, expiresInAsString=True)
    client_id, secret = servers.POST_CLIENT
    config = Config(
        server.token_endpoint + "?grant_type=client_credentials",
        client_id,
        client_secret=secret,
        client_auth="client_secret_post",
    )
    driver = make_driver(server.issuer, config, credentials=Credentials.client_credentials())
    for _ in range(3):
        status, body = driver.get(server.resource_url)
        assert (status, body["client_id"]) == (200, client_id)
    stats = server.stats()
    assert stats["token_requests"] == {"client_credentials": 1}
    assert stats["token_errors"] == {}


def test_the_gateway_refuses_a_grant_type_outside_the_query(start_server, make_driver) -> None:
    # The same client without the query: proves the server's gateway dialect is in force, and
    # that the refusal reaches the caller as a typed exception.
    server = start_server("oauth2-server.js", grantTypeInQuery=True, expiresInAsString=True)
    client_id, secret = servers.POST_CLIENT
    config = Config(
        server.token_endpoint, client_id, client_secret=secret, client_auth="client_secret_post"
    )
    driver = make_driver(server.issuer, config, credentials=Credentials.client_credentials())
    with pytest.raises(tokenflow.TokenEndpointError) as raised:
        driver.get(server.resource_url)
    assert (raised.value.status, raised.value.error_code) == (400, "invalid_request")
    assert raised.value.grant == "client_credentials"


def test_proactive_refresh_of_short_tokens_with_single_use_rotation(
    start_server, make_driver, tmp_path
) -> None:
    server = start_server("oauth2-server.js", accessTokenTtl=3)
    store = RecordingStore(tmp_path / "tokens.json")
    driver = make_driver(
        server.issuer,
        resource_owner_config(server),
        credentials=Credentials.password(*servers.PIN_USER),
        store=store,
    )
    end = time.monotonic() + 20
    calls = 0
    while time.monotonic() < end:
        status, _ = driver.get(server.resource_url)
        assert status == 200
        calls += 1
        time.sleep(0.1)
    stats = server.stats()
    refreshes = stats["token_requests"].get("refresh_token", 0)
    # 3-second tokens renewed a tenth of their lifetime early over 20 s: six or seven times.
    assert 5 <= refreshes <= 8, stats
    assert stats["token_requests"]["password"] == 1
    # No refresh token presented twice (the server would have answered invalid_grant), no
    # API call with an expired token.
    assert stats["token_errors"] == {}, stats
    assert stats["resource_401"] == 0, stats
    refresh_tokens = [refresh for _, _, refresh in store.saves]
    assert len(set(refresh_tokens)) == len(refresh_tokens) == refreshes + 1
    # Every access token was in the store before its first use.
    saved_at = {}
    for sequence, access, _ in store.saves:
        saved_at.setdefault(access, sequence)
    first_use = {}
    for sequence, access in driver.uses:
        first_use.setdefault(access, sequence)
    assert len(first_use) == refreshes + 1
    for access, used in first_use.items():
        assert saved_at[access] < used
    # And the store holds the last rotation.
    assert tokenflow.FileStore(store.path).load().expose_refresh_token() == refresh_tokens[-1]


def test_32_callers_hit_by_a_401_together_cost_one_token_request(start_server, make_driver) -> None:
    server = start_server("oauth2-server.js")
    driver = make_driver(
        server.issuer,
        resource_owner_config(server),
        credentials=Credentials.password(*servers.JOE),
    )
    assert driver.get(server.resource_url)[0] == 200
    server.reset_stats()
    results = driver.get_many([server.resource_url] * 32, before=server.expire_access_tokens)
    assert [status for status, _ in results] == [200] * 32
    stats = server.stats()
    assert stats["token_requests"] == {"refresh_token": 1}, stats
    assert stats["token_errors"] == {}
    if driver.name != "httpx":
        # Their tokens were taken before any went out: all 32 were refused.
        assert stats["resource_401"] == 32, stats
    else:
        assert stats["resource_401"] >= 1, stats
    assert stats["resource_ok"] == 32


def rejected_refresh_store(server: servers.RunningServer, config: Config, tmp_path) -> RecordingStore:
    """A store whose access token has expired and whose refresh token the server does not
    know, written by a real login and then edited."""
    store = RecordingStore(tmp_path / "tokens.json")
    flow_store = tokenflow.MemoryStore()
    from tokenflow.requests import TokenAuth

    auth = TokenAuth(config, credentials=Credentials.password(*servers.PIN_USER), store=flow_store)
    auth.bearer()
    import json

    data = json.loads(flow_store.load().to_json())
    data["refresh_token"] = "no-such-refresh-token"
    data["expires_at"] = data["issued_at"] - 1000
    store.save(tokenflow.StoredTokens.from_json(json.dumps(data).encode()))
    server.reset_stats()
    return store


def test_a_rejected_refresh_token_clears_the_store_and_requires_a_login(
    start_server, make_driver, tmp_path
) -> None:
    server = start_server("oauth2-server.js")
    config = resource_owner_config(server)
    store = rejected_refresh_store(server, config, tmp_path)
    driver = make_driver(server.issuer, config, store=store)
    with pytest.raises(tokenflow.LoginRequired) as raised:
        driver.get(server.resource_url)
    assert (raised.value.reason, raised.value.error_code) == ("refresh_token_rejected", "invalid_grant")
    assert store.clears == 1 and store.load() is None
    assert server.stats()["token_requests"] == {"refresh_token": 1}
    # Nothing to renew with now, and nothing to log in with: no more requests.
    with pytest.raises(tokenflow.LoginRequired):
        driver.get(server.resource_url)
    assert server.stats()["token_requests"] == {"refresh_token": 1}


def test_a_rejected_refresh_token_leads_to_a_login_through_the_callback(
    start_server, make_driver, tmp_path
) -> None:
    server = start_server("oauth2-server.js")
    config = resource_owner_config(server)
    store = rejected_refresh_store(server, config, tmp_path)
    asked = []

    def credentials() -> Credentials:
        asked.append(1)
        return Credentials.password(*servers.PIN_USER)

    driver = make_driver(server.issuer, config, store=store, credentials=credentials)
    status, body = driver.get(server.resource_url)
    assert (status, body["sub"]) == (200, "1234/joe.bloggs@acme.com")
    assert len(asked) == 1
    assert store.clears == 1
    assert store.load().expose_refresh_token() not in (None, "no-such-refresh-token")
    stats = server.stats()
    assert stats["token_requests"] == {"refresh_token": 1, "password": 1}
    assert stats["token_errors"] == {"invalid_grant": 1}


def test_a_login_the_server_refuses_is_a_typed_exception_naming_no_password(
    start_server, make_driver
) -> None:
    server = start_server("oauth2-server.js")
    driver = make_driver(
        server.issuer,
        resource_owner_config(server),
        credentials=Credentials.password("1234/joe.bloggs@acme.com", "secret1234-wrong"),
    )
    with pytest.raises(tokenflow.TokenEndpointError) as raised:
        driver.get(server.resource_url)
    assert raised.value.error_code == "invalid_grant" and raised.value.grant == "password"
    assert "secret1234" not in str(raised.value) + repr(raised.value)


def test_32_callers_without_a_token_cost_one_login(start_server, make_driver) -> None:
    server = start_server("oauth2-server.js")
    driver = make_driver(
        server.issuer,
        resource_owner_config(server),
        credentials=Credentials.password(*servers.PIN_USER),
    )
    results = driver.get_many([server.resource_url] * 32)
    assert [status for status, _ in results] == [200] * 32
    assert server.stats()["token_requests"] == {"password": 1}


def test_logout_forgets_the_tokens_and_the_next_request_logs_in_again(
    start_server, make_driver, tmp_path
) -> None:
    server = start_server("oauth2-server.js")
    store = RecordingStore(tmp_path / "tokens.json")
    driver = make_driver(
        server.issuer,
        resource_owner_config(server),
        credentials=Credentials.password(*servers.JOE),
        store=store,
    )
    assert driver.get(server.resource_url)[0] == 200
    driver.auth.logout()
    assert store.load() is None and store.clears == 1
    assert driver.get(server.resource_url)[0] == 200
    assert server.stats()["token_requests"] == {"password": 2}
    assert store.load() is not None
