"""tokenflow for httpx: an ``httpx.Auth`` for ``httpx.Client`` and ``httpx.AsyncClient``.

httpx runs an auth as a generator that yields requests and receives their responses; token
requests go out through the same client that way, so its transport, proxies and TLS settings
apply to them too (and they show up in ``response.history`` and event hooks like any auth
exchange).
"""

from __future__ import annotations

import time
from typing import AsyncGenerator, Generator, Optional, Union

import httpx

from ._core import Bearer, Config, HttpRequest
from ._engine import Call, CredentialsSource, Engine
from .store import TokenStore

__all__ = ["TokenAuth"]


class TokenAuth(httpx.Auth):
    """Attaches a valid access token to every request, for ``httpx.Client`` and
    ``httpx.AsyncClient`` alike.

    It logs in with ``credentials`` (a :class:`tokenflow.Credentials`, or a callable returning
    one or ``None``) when there is no token or the refresh token was refused, renews the
    token before it expires, and after an API's 401 renews it once and retries the request
    once. Any number of threads or tasks sharing the auth cost one token request. Tokens go
    to ``store`` before a new access token is used.

    A request whose body is a stream cannot be retried after a 401; give such requests a
    body in memory.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        config: Config,
        *,
        credentials: CredentialsSource = None,
        store: Optional[TokenStore] = None,
        seed: Union[bytes, int, None] = None,
    ) -> None:
        self.engine = Engine(config, credentials=credentials, store=store, seed=seed)

    def logout(self) -> None:
        """Forgets the tokens, here and in the store."""
        self.engine.logout()

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        call = self.engine.begin()
        bearer = self.engine.held()
        if bearer is None:
            bearer = yield from self._bearer(call)
        request.headers["Authorization"] = bearer.header_value
        response = yield request
        if response.status_code != 401:
            return
        self.engine.report_unauthorized(
            bearer.generation, response.headers.get_list("www-authenticate")
        )
        renewed = yield from self._bearer(call)
        if renewed.generation != bearer.generation:
            request.headers["Authorization"] = renewed.header_value
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        call = self.engine.begin()
        bearer = self.engine.held()
        while bearer is None:
            step = await self._step_async(call)
            if isinstance(step, Bearer):
                bearer = step
                break
            try:
                response = yield _token_request(step)
            except GeneratorExit:
                self._abandoned(step)
                raise
            await self._report_async(step, response)
        request.headers["Authorization"] = bearer.header_value
        response = yield request
        if response.status_code != 401:
            return
        self.engine.report_unauthorized(
            bearer.generation, response.headers.get_list("www-authenticate")
        )
        while True:
            step = await self._step_async(call)
            if isinstance(step, Bearer):
                break
            try:
                response = yield _token_request(step)
            except GeneratorExit:
                self._abandoned(step)
                raise
            await self._report_async(step, response)
        if step.generation != bearer.generation:
            request.headers["Authorization"] = step.header_value
            yield request

    def _bearer(self, call: Call) -> Generator[httpx.Request, httpx.Response, Bearer]:
        engine = self.engine
        while True:
            step = engine.step(call)
            if isinstance(step, Bearer):
                return step
            if isinstance(step, HttpRequest):
                try:
                    response = yield _token_request(step)
                except GeneratorExit:
                    self._abandoned(step)
                    raise
                response.read()
                engine.report_response(
                    step.id, response.status_code, response.headers.multi_items(), response.content
                )
            else:
                engine.wait(step)

    async def _step_async(self, call: Call) -> Union[Bearer, HttpRequest]:
        """A token or a token request to send; waits (without blocking the loop) otherwise."""
        engine = self.engine
        while True:
            step = engine.step(call)
            if isinstance(step, (Bearer, HttpRequest)):
                return step
            await engine.wait_async(step)

    def _abandoned(self, request: HttpRequest) -> None:
        # httpx closes the flow when sending failed (the exception goes to the caller); the
        # flow retries as its policy says, with whoever comes next. Whether the request
        # reached the server is unknown here, so it counts as possibly received.
        self.engine.report_failure(request.id, "other", "the token request did not complete")

    async def _report_async(self, request: HttpRequest, response: httpx.Response) -> None:
        await response.aread()
        self.engine.report_response(
            request.id, response.status_code, response.headers.multi_items(), response.content
        )

    def __repr__(self) -> str:
        return f"TokenAuth(config={self.engine.config!r})"


def _token_request(request: HttpRequest) -> httpx.Request:
    remaining = max(0.001, (request.deadline - time.monotonic_ns()) / 1e9)
    return httpx.Request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.body,
        extensions={
            "timeout": {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining}
        },
    )
