"""The part the httpx and requests drivers share: one flow, used by any number of threads and
asyncio tasks, with its token store and its credentials.

The drivers never hold the lock across IO. Whoever finds a token request waiting performs it
and reports the answer; everyone else waits for the flow to change. The flow emits one token
request at a time, so any number of waiting callers cost one request (single-flight).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import os
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Tuple, Union

from ._core import (
    Access,
    Bearer,
    Config,
    Credentials,
    HttpRequest,
    Idle,
    StoredTokens,
    TokenFlow,
)
from .errors import LoginRequired
from .events import Failed, LoginRequired as LoginRequiredEvent, TokensCleared, TokensUpdated
from .store import TokenStore

CredentialsSource = Union[Credentials, Callable[[], Optional[Credentials]], None]

# The longest a waiting caller sleeps before looking at the flow again, whatever the flow's
# own deadlines say: a safety net, never the mechanism.
_MAX_WAIT_S = 1.0


class Call:
    """One caller's pass through the engine: what it has already seen."""

    __slots__ = ("failures_seen", "waited", "logged_in")

    def __init__(self, failures_seen: int) -> None:
        self.failures_seen = failures_seen
        # Set once the caller had no token and waited (or sent a token request): from then
        # on a failed token request is its failure too.
        self.waited = False
        # One login through the credentials per call, so a login the server refuses ends in
        # an exception rather than a loop.
        self.logged_in = False


class Wait:
    """Nothing to do but wait for the flow to change (another caller's request, a backoff)."""

    __slots__ = ("version", "timeout")

    def __init__(self, version: int, timeout: float) -> None:
        self.version = version
        self.timeout = timeout


Step = Union[Bearer, HttpRequest, Wait]


class Engine:
    """A flow shared by threads and tasks, with its store and credentials."""

    def __init__(
        self,
        config: Config,
        *,
        credentials: CredentialsSource = None,
        store: Optional[TokenStore] = None,
        seed: Union[bytes, int, None] = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not isinstance(config, Config):
            raise TypeError("config must be a tokenflow.Config")
        self.config = config
        self._credentials = credentials
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._async_waiters: List[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = []
        # Bumped, under the lock, whenever the flow changed in a way a waiter cares about.
        self._version = 0
        self._outbox: Deque[HttpRequest] = collections.deque()
        self._until: Optional[int] = None
        self._failures = 0
        self._failure: Optional[BaseException] = None
        self._login_error: Optional[BaseException] = None
        # Tokens the store failed to save: saved before the flow is polled again.
        self._unsaved: Optional[StoredTokens] = None
        now = clock()
        wall_ms = time.time_ns() // 1_000_000
        seed = os.urandom(32) if seed is None else seed
        stored = store.load() if store is not None else None
        if stored is not None:
            self._flow = TokenFlow.restore(config, stored, seed, now, wall_ms)
        else:
            self._flow = TokenFlow(config, seed, now, wall_ms)

    def held(self) -> Optional[Bearer]:
        """The token, when one is held and the flow has nothing else to do: the path of
        nearly every request. ``None`` sends the caller through :meth:`step`."""
        with self._lock:
            return self._flow.access_if_idle(self._clock())

    def begin(self) -> Call:
        """Starts one caller's pass."""
        return Call(self._failures)

    def step(self, call: Call) -> Step:
        """A token to use, a token request for this caller to send (then report), or a wait."""
        with self._lock:
            while True:
                failure = self._failure
                if call.waited and self._failures != call.failures_seen and failure is not None:
                    raise copy.copy(failure)
                now = self._clock()
                access = self._flow.access(now)
                self._drain()
                if isinstance(access, Bearer):
                    # A proactive renewal may have started: the caller who saw it sends it
                    # (its own request goes out afterwards, with the token still valid).
                    request = self._take_request(now) if self._outbox else None
                    return request if request is not None else access
                if access == Access.LoginRequired:
                    credentials = self._credentials_for(call)
                    if credentials is None:
                        raise copy.copy(self._login_error) if self._login_error else LoginRequired(
                            "no token is held and no credentials were given to log in with",
                            reason="no_tokens",
                        )
                    call.logged_in = True
                    self._login_error = None
                    # Requests not yet sent belong to what the login abandons.
                    self._outbox.clear()
                    self._flow.login(now, credentials)
                    self._drain()
                    continue
                call.waited = True
                request = self._take_request(now)
                if request is not None:
                    return request
                timeout = _MAX_WAIT_S
                if self._until is not None:
                    timeout = min(timeout, max(0.0, (self._until - now) / 1e9))
                return Wait(self._version, timeout)

    def wait(self, wait: Wait) -> None:
        """Blocks until the flow changes or the wait's time is up."""
        with self._lock:
            if self._version == wait.version and wait.timeout > 0:
                self._changed.wait(wait.timeout)

    async def wait_async(self, wait: Wait) -> None:
        """Awaits until the flow changes or the wait's time is up."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._version != wait.version or wait.timeout <= 0:
                return
            future: "asyncio.Future[None]" = loop.create_future()
            entry = (loop, future)
            self._async_waiters.append(entry)
        try:
            await asyncio.wait_for(future, wait.timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._lock:
                try:
                    self._async_waiters.remove(entry)
                except ValueError:
                    pass

    def report_response(
        self, request_id: int, status: int, headers: Any, body: bytes
    ) -> None:
        """Reports the answer to a token request this caller sent."""
        with self._lock:
            self._flow.handle_response(self._clock(), request_id, status, headers, body)
            self._drain()

    def report_failure(self, request_id: int, kind: str, message: str) -> None:
        """Reports that a token request this caller sent got no answer."""
        with self._lock:
            self._flow.handle_failed(self._clock(), request_id, kind, message)
            self._drain()

    def report_unauthorized(self, generation: int, www_authenticate: List[str]) -> None:
        """Reports an API's 401 to a request made with the token of `generation`."""
        with self._lock:
            self._flow.handle_unauthorized(self._clock(), generation, www_authenticate)
            self._drain()

    def logout(self) -> None:
        """Forgets the tokens, here and in the store."""
        with self._lock:
            self._outbox.clear()
            self._flow.logout(self._clock())
            self._drain()

    def generation(self) -> Optional[int]:
        """The generation of the token held, if any."""
        with self._lock:
            return self._flow.generation()

    def _credentials_for(self, call: Call) -> Optional[Credentials]:
        source = self._credentials
        if source is None or call.logged_in:
            return None
        if isinstance(source, Credentials):
            return source
        credentials = source()
        if credentials is not None and not isinstance(credentials, Credentials):
            raise TypeError("the credentials callback must return tokenflow.Credentials or None")
        return credentials

    def _take_request(self, now: int) -> Optional[HttpRequest]:
        # Only the request the flow still waits for is worth sending: one it abandoned or
        # gave up on would, for a single-use refresh token, spend the token for nothing.
        in_flight = self._flow.request_in_flight()
        while self._outbox:
            request = self._outbox.popleft()
            if request.id == in_flight and request.deadline > now:
                return request
        return None

    def _drain(self) -> None:
        # The flow's contract: tokens from TokensUpdated are stored before it is polled again;
        # the new access token is released only then.
        if self._unsaved is not None:
            self._store.save(self._unsaved)  # type: ignore[union-attr]
            self._unsaved = None
        flow = self._flow
        changed = False
        while True:
            output = flow.poll_output()
            if isinstance(output, Idle):
                self._until = output.until
                break
            changed = True
            if isinstance(output, HttpRequest):
                self._outbox.append(output)
            elif isinstance(output, TokensUpdated):
                if self._store is not None:
                    self._unsaved = output.tokens
                    self._store.save(self._unsaved)
                    self._unsaved = None
            elif isinstance(output, TokensCleared):
                if self._store is not None:
                    self._store.clear()
            elif isinstance(output, LoginRequiredEvent):
                self._login_error = output.error
            elif isinstance(output, Failed):
                self._failures += 1
                self._failure = output.error
        if changed:
            self._wake_all()

    def _wake_all(self) -> None:
        self._version += 1
        self._changed.notify_all()
        waiters, self._async_waiters = self._async_waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                pass  # its loop is closed: nobody is waiting there any more

    def __repr__(self) -> str:
        return f"Engine(config={self.config!r}, store={self._store!r})"


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)
