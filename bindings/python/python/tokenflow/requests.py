"""tokenflow for requests: an auth (``requests.auth.AuthBase``) that keeps a valid token.

Token requests go out through a ``requests.Session`` of the auth's own (or the one given);
an API's 401 is handled by a response hook that renews the token once and resends the
request once, the way requests' own digest auth resends after its challenge.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional, Union

import requests
from requests.cookies import extract_cookies_to_jar

from ._core import Bearer, Config, HttpRequest
from ._engine import Call, CredentialsSource, Engine
from .store import TokenStore

__all__ = ["TokenAuth"]

# Marks a prepared request: the generation of the token it carries, or -1 once resent.
_GENERATION = "_tokenflow_generation"


class TokenAuth(requests.auth.AuthBase):
    """Attaches a valid access token to every request made with it.

    It logs in with ``credentials`` (a :class:`tokenflow.Credentials`, or a callable returning
    one or ``None``) when there is no token or the refresh token was refused, renews the
    token before it expires, and after an API's 401 renews it once and resends the request
    once. Any number of threads sharing the auth cost one token request. Tokens go to
    ``store`` before a new access token is used. ``session`` carries the token requests (a
    new ``requests.Session`` by default).

    A request whose body is a stream (a file, a generator) cannot be resent after a 401.
    """

    def __init__(
        self,
        config: Config,
        *,
        credentials: CredentialsSource = None,
        store: Optional[TokenStore] = None,
        session: Optional[requests.Session] = None,
        seed: Union[bytes, int, None] = None,
    ) -> None:
        self.engine = Engine(config, credentials=credentials, store=store, seed=seed)
        self._session = session if session is not None else requests.Session()
        self._hook = self._on_response

    def logout(self) -> None:
        """Forgets the tokens, here and in the store."""
        self.engine.logout()

    def bearer(self) -> Bearer:
        """A valid token, obtaining one if needed (blocking)."""
        return self._bearer(self.engine.begin())

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        bearer = self.engine.held()
        if bearer is None:
            bearer = self._bearer(self.engine.begin())
        request.headers["Authorization"] = bearer.header_value
        setattr(request, _GENERATION, bearer.generation)
        request.hooks["response"].append(self._hook)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        sent = response.request
        generation = getattr(sent, _GENERATION, -1)
        if generation < 0:
            return response  # already resent once
        www_authenticate: List[str] = []
        if "www-authenticate" in response.headers:
            www_authenticate.append(response.headers["www-authenticate"])
        self.engine.report_unauthorized(generation, www_authenticate)
        renewed = self._bearer(self.engine.begin())
        if renewed.generation == generation:
            return response
        # Free the connection before resending, as requests' digest auth does.
        response.content
        response.close()
        again = sent.copy()
        jar = again._cookies
        if jar is not None:
            extract_cookies_to_jar(jar, sent, response.raw)
            again.prepare_cookies(jar)
        again.headers["Authorization"] = renewed.header_value
        setattr(again, _GENERATION, -1)
        retried = response.connection.send(again, **kwargs)
        retried.history.append(response)
        retried.request = again
        return retried

    def _bearer(self, call: Call) -> Bearer:
        engine = self.engine
        while True:
            step = engine.step(call)
            if isinstance(step, Bearer):
                return step
            if isinstance(step, HttpRequest):
                self._send(step)
            else:
                engine.wait(step)

    def _send(self, request: HttpRequest) -> None:
        remaining = max(0.001, (request.deadline - time.monotonic_ns()) / 1e9)
        try:
            response = self._session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=remaining,
                allow_redirects=False,
            )
            body = response.content
        except requests.RequestException as error:
            self.engine.report_failure(request.id, _failure_kind(error), type(error).__name__)
            return
        self.engine.report_response(
            request.id, response.status_code, list(response.headers.items()), body
        )

    def __repr__(self) -> str:
        return f"TokenAuth(config={self.engine.config!r})"


def _failure_kind(error: requests.RequestException) -> str:
    """Whether the request may have reached the server decides whether resending is safe."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "not_sent"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "timed_out"
    if isinstance(error, requests.exceptions.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        try:
            from urllib3.exceptions import NewConnectionError

            if isinstance(reason, NewConnectionError):
                return "not_sent"
        except ImportError:  # pragma: no cover - urllib3 comes with requests
            pass
        return "interrupted"
    return "other"
