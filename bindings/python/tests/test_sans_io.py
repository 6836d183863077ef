"""The flow as a Python class: the same commands, inputs and outputs as the Rust TokenFlow,
driven by hand with scripted answers and `time.monotonic_ns()`-style integers."""

from __future__ import annotations

import time

import pytest

import tokenflow
from tokenflow import Access, Bearer, Config, Credentials, HttpRequest, Idle, TokenFlow
from tokenflow import events

from conftest import observe

S = 1_000_000_000  # nanoseconds in a second
JSON = [("content-type", "application/json")]


def drain(flow: TokenFlow) -> list:
    outputs = []
    while True:
        output = observe(flow.poll_output())
        outputs.append(output)
        if isinstance(output, Idle):
            return outputs


def logged_in(body: bytes, config: Config = None, now: int = 5 * S):
    config = config or Config(
        "https://id.example/connect/token",
        "datahub-backend",
        client_secret="basic-secret",
        scope="datahub-api offline_access",
    )
    flow = observe(TokenFlow(config, 42, now, 1_700_000_000_000))
    flow.login(now, Credentials.password("svc@acme.com", "pw-joe"))
    request = observe(flow.poll_output())
    assert isinstance(request, HttpRequest)
    flow.handle_response(now, request.id, 200, JSON, body)
    return flow, request, drain(flow)


def test_a_whole_exchange_by_hand() -> None:
    now = 5 * S
    flow, request, outputs = logged_in(
        b'{"access_token":"AT-first","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-first"}',
        now=now,
    )
    assert (request.method, request.url) == ("POST", "https://id.example/connect/token")
    assert dict(request.headers)["content-type"] == "application/x-www-form-urlencoded"
    assert dict(request.headers)["authorization"].startswith("Basic ")
    assert request.body.startswith(b"grant_type=password&username=svc%40acme.com&password=")
    assert request.deadline == now + 30 * S
    # Tokens to store first, then the release, then the idle deadline: proactive refresh 30 s
    # before expiry, on the host's own clock.
    assert [type(o) for o in outputs] == [events.TokensUpdated, events.AccessReady, Idle]
    assert outputs[0].tokens.expose_refresh_token() == "RT-first"
    assert outputs[1].generation == 1
    assert outputs[2].until == now + (3600 - 30) * S
    bearer = observe(flow.access(now + S))
    assert isinstance(bearer, Bearer) and bearer.header_value == "Bearer AT-first"
    assert flow.generation() == 1


def test_the_idle_deadline_renews_proactively_on_the_host_clock() -> None:
    flow, _, outputs = logged_in(
        b'{"access_token":"AT-a","token_type":"Bearer","expires_in":"3","refresh_token":"RT-a"}'
    )
    until = outputs[-1].until
    assert until == 5 * S + 3 * S - 300_000_000  # a tenth of a 3 s lifetime, not 30 s
    flow.handle_timeout(until)
    refresh = observe(flow.poll_output())
    assert isinstance(refresh, HttpRequest)
    assert b"grant_type=refresh_token&refresh_token=RT-a" in refresh.body
    # Still the old token meanwhile.
    assert observe(flow.access(until)).header_value == "Bearer AT-a"


def test_a_401_for_the_current_token_renews_once_and_an_old_one_costs_nothing() -> None:
    flow, _, _ = logged_in(
        b'{"access_token":"AT-a","token_type":"Bearer","expires_in":600,"refresh_token":"RT-a"}'
    )
    now = 6 * S
    flow.handle_unauthorized(now, 1, ['Bearer error="invalid_token"'])
    assert observe(flow.access(now)) == Access.Pending
    refresh = observe(flow.poll_output())
    assert isinstance(refresh, HttpRequest)
    drain(flow)
    flow.handle_unauthorized(now, 1, [])
    assert isinstance(observe(flow.poll_output()), Idle), "no second refresh"
    flow.handle_response(now, refresh.id, 200, JSON, b'{"access_token":"AT-b","token_type":"Bearer","expires_in":600}')
    outputs = drain(flow)
    assert [type(o) for o in outputs] == [events.TokensUpdated, events.AccessReady, Idle]
    # No refresh token came back: the old one is kept (RFC 6749 section 6).
    assert outputs[0].tokens.expose_refresh_token() == "RT-a"
    flow.handle_unauthorized(now, 1, [])  # generation 1 is old now
    assert isinstance(observe(flow.poll_output()), Idle)
    assert observe(flow.access(now)).generation == 2


def test_ids_and_generations_the_flow_never_handed_out_are_ignored() -> None:
    now = 5 * S
    flow = observe(TokenFlow(Config("https://id.example/token", "app"), 42, now, 1_700_000_000_000))
    flow.login(now, Credentials.password("svc@acme.com", "pw-joe"))
    request = observe(flow.poll_output())
    assert isinstance(request, HttpRequest)
    drain(flow)
    body = b'{"access_token":"AT-x","token_type":"Bearer","expires_in":600,"refresh_token":"RT-x"}'
    for stranger in (0, request.id + 1, 2**64 - 1):
        flow.handle_response(now, stranger, 200, JSON, body)
        flow.handle_failed(now, stranger, "other", "no such request")
    assert [type(o) for o in drain(flow)] == [Idle]
    assert flow.request_in_flight() == request.id
    assert observe(flow.access(now)) == Access.Pending

    flow.handle_response(now, request.id, 200, JSON, body)
    assert [type(o) for o in drain(flow)] == [events.TokensUpdated, events.AccessReady, Idle]
    # The same answer again is no news.
    flow.handle_response(now, request.id, 200, JSON, body)
    assert [type(o) for o in drain(flow)] == [Idle]

    for stranger in (0, 2, 2**64 - 1):
        flow.handle_unauthorized(now, stranger, [])
    assert [type(o) for o in drain(flow)] == [Idle]
    assert observe(flow.access(now)).generation == 1 == flow.generation()


def test_the_gateway_dialect_keeps_the_query_and_reads_a_string_expires_in() -> None:
    config = Config(
        "https://api.gateway.example/auth/v2/accesstoken?grant_type=client_credentials",
        "APP-API-KEY",
        client_secret="post-secret",
        client_auth="client_secret_post",
    )
    flow = observe(TokenFlow(config, 1, 0, 1_700_000_000_000))
    flow.login(0, Credentials.client_credentials())
    request = observe(flow.poll_output())
    assert request.url == "https://api.gateway.example/auth/v2/accesstoken?grant_type=client_credentials"
    assert request.body == b"grant_type=client_credentials&client_id=APP-API-KEY&client_secret=post-secret"
    assert "authorization" not in dict(request.headers)
    flow.handle_response(0, request.id, 200, JSON, b'{"access_token":"AT-g","token_type":"BearerToken","expires_in":"86399","status":"approved"}')
    outputs = drain(flow)
    assert outputs[-1].until == (86399 - 30) * S


def test_a_rejected_refresh_token_clears_the_tokens_and_requires_a_login() -> None:
    flow, _, _ = logged_in(
        b'{"access_token":"AT-a","token_type":"Bearer","expires_in":600,"refresh_token":"RT-a"}'
    )
    now = 700 * S
    assert observe(flow.access(now)) == Access.Pending
    refresh = observe(flow.poll_output())
    drain(flow)
    flow.handle_response(now, refresh.id, 400, JSON, b'{"error":"invalid_grant","error_description":"RT-a is spent"}')
    outputs = drain(flow)
    assert [type(o) for o in outputs] == [events.TokensCleared, events.LoginRequired, Idle]
    error = outputs[1].error
    assert isinstance(error, tokenflow.LoginRequired)
    assert (error.reason, error.error_code) == ("refresh_token_rejected", "invalid_grant")
    assert "RT-a" not in str(error), "the server's echo of the token is scrubbed"
    assert observe(flow.access(now)) == Access.LoginRequired
    assert flow.stored_tokens() is None


def test_retries_back_off_on_the_host_clock_then_fail_with_a_typed_error() -> None:
    config = Config("https://id.example/token", "app", client_secret="basic-secret", max_retries=1)
    flow = observe(TokenFlow(config, 3, 0, 1_700_000_000_000))
    flow.login(0, Credentials.password("joe", "pw-joe"))
    first = observe(flow.poll_output())
    flow.handle_response(0, first.id, 503, [("retry-after", "2")], b"busy")
    idle = drain(flow)[-1]
    assert idle.until >= 2 * S
    flow.handle_timeout(idle.until)
    second = observe(flow.poll_output())
    assert isinstance(second, HttpRequest) and second.id != first.id
    flow.handle_failed(idle.until, second.id, "timed_out", "no answer")
    outputs = drain(flow)
    failed = [o for o in outputs if isinstance(o, events.Failed)]
    assert len(failed) == 1
    assert isinstance(failed[0].error, tokenflow.TokenTransportError)
    assert failed[0].error.kind == "timed_out" and failed[0].error.attempts == 2


def test_inputs_that_cannot_be_http_are_refused_with_typed_errors() -> None:
    flow = observe(TokenFlow(Config("https://id.example/token", "app"), 1, 0, 0))
    flow.login(0, Credentials.client_credentials())
    request = observe(flow.poll_output())
    with pytest.raises(tokenflow.InvalidInput):
        flow.handle_response(0, request.id, 42, [], b"")
    with pytest.raises(tokenflow.InvalidInput):
        flow.handle_failed(0, request.id, "exploded", "")
    # Unknown ids and generations are ignored, as the core ignores stale ones.
    flow.handle_response(0, 999, 200, JSON, b"{}")
    flow.handle_unauthorized(0, 999, [])
    assert flow.request_in_flight() == request.id


def test_configuration_errors_are_typed() -> None:
    with pytest.raises(tokenflow.ConfigError, match="https"):
        Config("http://id.example/token", "app")
    with pytest.raises(tokenflow.ConfigError):
        Config("https://id.example/token", "app", client_auth="client_secret_post")
    with pytest.raises(tokenflow.ConfigError):
        Config("https://id.example/token", "app", client_auth="magic")
    with pytest.raises(tokenflow.ConfigError):
        Config("https://id.example/token", "app", refresh_margin=-1.0)
    with pytest.raises(tokenflow.ConfigError):
        TokenFlow(Config("https://id.example/token", "app"), b"short", 0, 0)


def test_reprs_show_no_secret() -> None:
    config = Config("https://id.example/token", "app", client_secret="basic-secret")
    credentials = Credentials.password("1234/joe.bloggs@acme.com", "secret1234")
    texts = [repr(config), str(config), repr(credentials), str(credentials)]
    assert not any("basic-secret" in t or "secret1234" in t for t in texts)
    assert "1234/joe.bloggs@acme.com" in repr(credentials)


def test_time_is_the_hosts_monotonic_clock() -> None:
    now = time.monotonic_ns()
    flow, request, outputs = logged_in(
        b'{"access_token":"AT-t","token_type":"Bearer","expires_in":100,"refresh_token":"RT-t"}', now=now
    )
    assert request.deadline == now + 30 * S
    assert outputs[-1].until == now + 90 * S
    # A reading earlier than one already seen counts as the latest seen.
    assert isinstance(observe(flow.access(now - S)), Bearer)
