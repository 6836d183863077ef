"""Token responses no client can use end in typed exceptions, through every driver, and
none of them shows a secret the server echoed back."""

from __future__ import annotations

import pytest

import tokenflow
from tokenflow import Config, Credentials

PASSWORD = "pw-joe"

CASES = [
    # (status, content type, body, exception, what the message or `problem` says)
    (200, "text/html", b"<html><body>Welcome</body></html>", tokenflow.MalformedTokenResponse, "not JSON"),
    (200, "application/json", b'{"token_type":"Bearer","expires_in":60}', tokenflow.MalformedTokenResponse, "access_token"),
    (200, "application/json", b'{"access_token":"AT-x","token_type":"mac"}', tokenflow.MalformedTokenResponse, "token type"),
    (200, "application/json", b'{"access_token":"AT-x","token_type":"Bearer","expires_in":-5}', tokenflow.MalformedTokenResponse, "expires_in"),
    (200, "application/json", b"[1,2,3]", tokenflow.MalformedTokenResponse, "not an object"),
    (200, "application/json", b"", tokenflow.MalformedTokenResponse, "empty"),
    (400, "application/json", b'{"error":"invalid_client","error_description":"bad pw-joe"}', tokenflow.TokenEndpointError, "invalid_client"),
    (502, "text/html", b"<html><h1>Bad Gateway</h1> pw-joe</html>", tokenflow.TokenEndpointError, "502"),
]


@pytest.mark.parametrize("status, content_type, body, exception, says", CASES)
def test_an_unusable_token_response_is_a_typed_exception(
    stub, make_driver, status, content_type, body, exception, says
) -> None:
    stub.answer_with(status, body, content_type)
    config = Config(stub.url + "/token", "basic-client", client_secret="basic-secret", max_retries=0)
    driver = make_driver(stub.url + "/api", config, credentials=Credentials.password("joe", PASSWORD))
    with pytest.raises(exception) as raised:
        driver.get(stub.url + "/api/resource")
    error = raised.value
    assert says in str(error) or says in getattr(error, "problem", "")
    assert error.grant == "password" and error.attempts == 1
    assert PASSWORD not in str(error) and PASSWORD not in repr(error)
    if exception is tokenflow.TokenEndpointError:
        assert error.status == status
    assert stub.token_requests == 1


def test_a_malformed_answer_is_not_retried_but_a_later_call_asks_again(stub, make_driver) -> None:
    stub.answer_with(200, b"not json at all")
    config = Config(stub.url + "/token", "basic-client", client_secret="basic-secret")
    driver = make_driver(stub.url + "/api", config, credentials=Credentials.password("joe", PASSWORD))
    with pytest.raises(tokenflow.MalformedTokenResponse):
        driver.get(stub.url + "/api/resource")
    stub.answer_with(200, b'{"access_token":"AT-good-one","token_type":"Bearer","expires_in":"60"}')
    assert driver.get(stub.url + "/api/resource") == (200, {"ok": True})
    assert stub.token_requests == 2
