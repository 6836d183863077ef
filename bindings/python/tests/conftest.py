"""Fixtures: the Node test servers, a stub token endpoint, the three drivers behind one
interface, and a check, after every test, that no tokenflow object or exception seen during
the test shows a secret in its `str` or `repr`."""

from __future__ import annotations

import asyncio
import gc
import http.server
import itertools
import json
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter

import tokenflow
import tokenflow._engine
import tokenflow.errors
from tokenflow import Bearer, StoredTokens, TokenFlow
from tokenflow.events import TokensUpdated

import servers

# ---------------------------------------------------------------------------------------------
# Secrets: the fixtures' passwords and client secrets, and every token the flow ever handed
# out (harvested as the tests run).

SECRETS = {
    servers.BASIC_CLIENT[1],
    servers.POST_CLIENT[1],
    servers.SPECIAL_CLIENT[1],
    servers.JOE[1],
    servers.PIN_USER[1],
}
_observed: Dict[int, Any] = {}


def add_secret(value: Optional[str]) -> None:
    if value:
        SECRETS.add(value)


def observe(obj: Any) -> Any:
    """Keeps `obj` to have its `str` and `repr` checked when the test ends."""
    _observed[id(obj)] = obj
    if type(obj) is TokensUpdated:
        add_secret(obj.tokens.expose_access_token())
        add_secret(obj.tokens.expose_refresh_token())
    elif type(obj) is Bearer:
        add_secret(obj.header_value.split(" ", 1)[-1])
    return obj


def leaks(obj: Any) -> List[str]:
    """The secrets `str(obj)` or `repr(obj)` shows (and those of an event's exception)."""
    texts = [str(obj), repr(obj)]
    error = getattr(obj, "error", None) if not isinstance(obj, BaseException) else None
    if isinstance(error, BaseException):
        texts += [str(error), repr(error)]
    return sorted({s for s in SECRETS for t in texts if s in t})


def _tokenflow_objects() -> Iterator[Any]:
    """Live objects of tokenflow's Python types (drivers, engines, stores, exceptions), and the
    objects of its Rust types they hold (configurations, flows, credentials)."""

    def ours(o: Any) -> bool:
        module = getattr(type(o), "__module__", None)
        return isinstance(module, str) and module.startswith("tokenflow")

    for holder in gc.get_objects():
        if ours(holder):
            yield holder
            for o in getattr(holder, "__dict__", {}).values():
                if ours(o):
                    yield o


class _RecordingFlow:
    """Wraps the drivers' flow to see every output and token it hands out."""

    def __init__(self, inner: TokenFlow) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def poll_output(self) -> Any:
        return observe(self._inner.poll_output())

    def access(self, now: int) -> Any:
        return observe(self._inner.access(now))

    def access_if_idle(self, now: int) -> Any:
        return observe(self._inner.access_if_idle(now))

    def __repr__(self) -> str:
        return repr(self._inner)


class _RecordingFlowFactory:
    def __call__(self, *args: Any) -> _RecordingFlow:
        return _RecordingFlow(TokenFlow(*args))

    @staticmethod
    def restore(*args: Any) -> _RecordingFlow:
        return _RecordingFlow(TokenFlow.restore(*args))


_original_error_init = tokenflow.errors.TokenflowError.__init__


def _observed_error_init(self: Any, message: str) -> None:
    _original_error_init(self, message)
    observe(self)


tokenflow.errors.TokenflowError.__init__ = _observed_error_init  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def no_secret_in_any_repr(request: pytest.FixtureRequest) -> Iterator[None]:
    recording = "benchmark" not in request.keywords
    if recording:
        original = tokenflow._engine.TokenFlow
        tokenflow._engine.TokenFlow = _RecordingFlowFactory()  # type: ignore[assignment]
    try:
        yield
    finally:
        if recording:
            tokenflow._engine.TokenFlow = original  # type: ignore[assignment]
    found = {}
    for obj in itertools.chain(list(_observed.values()), _tokenflow_objects()):
        bad = leaks(obj)
        if bad:
            found[type(obj).__name__] = bad
    _observed.clear()
    assert not found, f"secrets shown by {found}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    # Any exception that reached pytest, tokenflow's or not, must not show a secret either.
    outcome = yield
    if call.excinfo is not None:
        bad = leaks(call.excinfo.value)
        if bad:
            report = outcome.get_result()
            report.outcome = "failed"
            report.longrepr = f"the exception raised shows secrets: {len(bad)} of them"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "benchmark: measures; the flow is not wrapped for recording")


# ---------------------------------------------------------------------------------------------
# Servers.


@pytest.fixture
def start_server() -> Iterator[Callable[..., servers.RunningServer]]:
    started: List[servers.RunningServer] = []

    def start(script: str = "oauth2-server.js", **options: Any) -> servers.RunningServer:
        server = servers.RunningServer(script, options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class StubTokenEndpoint:
    """A token endpoint that answers what it is told to, for malformed answers no real
    server gives; `/api/resource` accepts any bearer token."""

    def __init__(self) -> None:
        self.answer: Tuple[int, Dict[str, str], bytes] = (500, {}, b"")
        self.token_requests = 0
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                stub.token_requests += 1
                status, headers, body = stub.answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                ok = (self.headers.get("authorization") or "").startswith("Bearer ")
                body = json.dumps({"ok": ok}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def answer_with(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.answer = (status, {"content-type": content_type}, body)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubTokenEndpoint]:
    endpoint = StubTokenEndpoint()
    yield endpoint
    endpoint.stop()


# ---------------------------------------------------------------------------------------------
# Stores and the three drivers.

_sequence = itertools.count()


class RecordingStore(tokenflow.FileStore):
    """A file store that notes, in one sequence with the API requests, each save."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.saves: List[Tuple[int, Optional[str], Optional[str]]] = []
        self.clears = 0

    def save(self, tokens: StoredTokens) -> None:
        super().save(tokens)
        access, refresh = tokens.expose_access_token(), tokens.expose_refresh_token()
        add_secret(access)
        add_secret(refresh)
        self.saves.append((next(_sequence), access, refresh))

    def clear(self) -> None:
        super().clear()
        self.clears += 1


class Driver:
    """One of the three ways to use tokenflow, behind the same calls."""

    name = ""

    def __init__(self, api_prefix: str) -> None:
        self.api_prefix = api_prefix
        # (sequence number, access token) of every API request as it went out.
        self.uses: List[Tuple[int, str]] = []
        self.auth: Any = None

    def _record(self, url: str, authorization: Optional[str]) -> None:
        if url.startswith(self.api_prefix) and authorization:
            self.uses.append((next(_sequence), authorization.split(" ", 1)[-1]))

    def setup(self, config: tokenflow.Config, **kwargs: Any) -> "Driver":
        raise NotImplementedError

    def get(self, url: str) -> Tuple[int, Any]:
        raise NotImplementedError

    def get_many(
        self, urls: List[str], before: Callable[[], Any] = lambda: None
    ) -> List[Tuple[int, Any]]:
        """All at once; `before` runs once every request holds its token (for requests, whose
        auth runs as a request is prepared) or just before they start."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class HttpxSync(Driver):
    name = "httpx"

    def setup(self, config: tokenflow.Config, **kwargs: Any) -> Driver:
        from tokenflow.httpx import TokenAuth

        self.auth = TokenAuth(config, **kwargs)
        self.client = httpx.Client(
            auth=self.auth,
            event_hooks={"request": [lambda r: self._record(str(r.url), r.headers.get("authorization"))]},
        )
        return self

    def get(self, url: str) -> Tuple[int, Any]:
        response = self.client.get(url)
        return response.status_code, response.json()

    def get_many(
        self, urls: List[str], before: Callable[[], Any] = lambda: None
    ) -> List[Tuple[int, Any]]:
        before()
        results: List[Any] = [None] * len(urls)
        barrier = threading.Barrier(len(urls))

        def run(i: int) -> None:
            barrier.wait()
            results[i] = self.get(urls[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def close(self) -> None:
        self.client.close()


class HttpxAsync(Driver):
    name = "httpx-async"

    def setup(self, config: tokenflow.Config, **kwargs: Any) -> Driver:
        from tokenflow.httpx import TokenAuth

        self.loop = asyncio.new_event_loop()
        self.auth = TokenAuth(config, **kwargs)

        async def hook(r: httpx.Request) -> None:
            self._record(str(r.url), r.headers.get("authorization"))

        async def make() -> httpx.AsyncClient:
            return httpx.AsyncClient(auth=self.auth, event_hooks={"request": [hook]})

        self.client = self.loop.run_until_complete(make())
        return self

    async def _get(self, url: str) -> Tuple[int, Any]:
        response = await self.client.get(url)
        return response.status_code, response.json()

    def get(self, url: str) -> Tuple[int, Any]:
        return self.loop.run_until_complete(self._get(url))

    def get_many(
        self, urls: List[str], before: Callable[[], Any] = lambda: None
    ) -> List[Tuple[int, Any]]:
        before()

        async def all_at_once() -> List[Tuple[int, Any]]:
            return list(await asyncio.gather(*(self._get(u) for u in urls)))

        return self.loop.run_until_complete(all_at_once())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


class Requests(Driver):
    name = "requests"

    def setup(self, config: tokenflow.Config, **kwargs: Any) -> Driver:
        from tokenflow.requests import TokenAuth

        driver = self

        class RecordingAdapter(HTTPAdapter):
            def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
                driver._record(request.url or "", request.headers.get("authorization"))
                return super().send(request, **kw)

        self.session = requests.Session()
        self.session.mount("http://", RecordingAdapter())
        self.auth = TokenAuth(config, **kwargs)
        self.session.auth = self.auth
        return self

    def get(self, url: str) -> Tuple[int, Any]:
        response = self.session.get(url, timeout=30)
        return response.status_code, response.json()

    def get_many(
        self, urls: List[str], before: Callable[[], Any] = lambda: None
    ) -> List[Tuple[int, Any]]:
        # Every request is prepared (and so given its token) before any is sent: they all
        # carry the same token when they go out together.
        prepared = [self.session.prepare_request(requests.Request("GET", u)) for u in urls]
        results: List[Any] = [None] * len(urls)
        before()
        barrier = threading.Barrier(len(urls))

        def run(i: int) -> None:
            barrier.wait()
            response = self.session.send(prepared[i], timeout=30)
            results[i] = (response.status_code, response.json())

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def close(self) -> None:
        self.session.close()


DRIVERS = {d.name: d for d in (HttpxSync, HttpxAsync, Requests)}


@pytest.fixture(params=list(DRIVERS))
def driver_class(request: pytest.FixtureRequest) -> Any:
    return DRIVERS[request.param]


@pytest.fixture
def make_driver(driver_class: Any) -> Iterator[Callable[..., Driver]]:
    made: List[Driver] = []

    def make(api_prefix: str, config: tokenflow.Config, **kwargs: Any) -> Driver:
        driver = driver_class(api_prefix).setup(config, **kwargs)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()
