"""Type stubs of the Rust extension: the sans-IO flow and its values."""

from typing import Iterable, List, Optional, Tuple, Union, final

from .events import AccessReady, Failed, LoginRequired, OtherEvent, TokensCleared, TokensUpdated

@final
class Config:
    """The validated configuration of one flow. Durations are in seconds."""

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        *,
        client_secret: Optional[str] = None,
        client_auth: Optional[str] = None,
        scope: Optional[str] = None,
        refresh_margin: Optional[float] = None,
        request_timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        initial_backoff: Optional[float] = None,
        max_backoff: Optional[float] = None,
        max_retry_after: Optional[float] = None,
        assumed_lifetime: Optional[float] = None,
        max_body_bytes: Optional[int] = None,
        proactive_refresh: Optional[bool] = None,
        allow_insecure_http: Optional[bool] = None,
    ) -> None: ...
    @property
    def token_endpoint(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_auth(self) -> str:
        """`client_secret_basic`, `client_secret_basic_unencoded`, `client_secret_post` or `none`."""
    @property
    def scope(self) -> Optional[str]: ...
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def request_timeout(self) -> float: ...

@final
class Credentials:
    """What a login uses. `repr` never shows the password."""

    @staticmethod
    def password(username: str, password: str) -> "Credentials": ...
    @staticmethod
    def client_credentials() -> "Credentials": ...
    @property
    def grant(self) -> str: ...

@final
class StoredTokens:
    """What a token store keeps. `repr` never shows a token."""

    @staticmethod
    def from_json(data: bytes) -> "StoredTokens": ...
    def to_json(self) -> bytes: ...
    @property
    def grant(self) -> str: ...
    @property
    def expires_at_ms(self) -> Optional[int]: ...
    @property
    def refresh_token_expires_at_ms(self) -> Optional[int]: ...
    @property
    def issued_at_ms(self) -> int: ...
    @property
    def scope(self) -> Optional[str]: ...
    @property
    def has_access_token(self) -> bool: ...
    @property
    def has_refresh_token(self) -> bool: ...
    def expose_access_token(self) -> Optional[str]: ...
    def expose_refresh_token(self) -> Optional[str]: ...

@final
class Bearer:
    """A usable access token. `repr` shows only the generation."""

    @property
    def header_value(self) -> str: ...
    @property
    def generation(self) -> int: ...

@final
class Access:
    """Why `TokenFlow.access` gave no token."""

    Pending: "Access"
    LoginRequired: "Access"

@final
class HttpRequest:
    """A token request to send; report its answer with its `id`."""

    @property
    def id(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> List[Tuple[str, str]]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def deadline(self) -> int:
        """A `time.monotonic_ns()` reading after which the flow stops waiting for the answer."""

@final
class Idle:
    """Nothing more to do: wait for an input, or until `until` (a `time.monotonic_ns()`
    reading) and then call `handle_timeout`."""

    @property
    def until(self) -> Optional[int]: ...

Event = Union[TokensUpdated, TokensCleared, AccessReady, LoginRequired, Failed, OtherEvent]
Output = Union[HttpRequest, Event, Idle]

class TokenFlow:
    """The token lifecycle as a state machine that never does IO. Times are
    `time.monotonic_ns()` readings; `wall_ms` is Unix milliseconds at the same moment."""

    def __init__(self, config: Config, seed: Union[bytes, int], now: int, wall_ms: int) -> None: ...
    @staticmethod
    def restore(
        config: Config, tokens: StoredTokens, seed: Union[bytes, int], now: int, wall_ms: int
    ) -> "TokenFlow": ...
    def login(self, now: int, credentials: Credentials) -> None: ...
    def access(self, now: int) -> Union[Bearer, Access]: ...
    def access_if_idle(self, now: int) -> Optional[Bearer]: ...
    def logout(self, now: int) -> None: ...
    def handle_response(
        self,
        now: int,
        id: int,
        status: int,
        headers: Iterable[Tuple[str, str]],
        body: bytes,
    ) -> None: ...
    def handle_failed(self, now: int, id: int, kind: str, message: str) -> None: ...
    def handle_unauthorized(
        self, now: int, generation: int, www_authenticate: List[str] = ...
    ) -> None: ...
    def handle_timeout(self, now: int) -> None: ...
    def poll_output(self) -> Output: ...
    def stored_tokens(self) -> Optional[StoredTokens]: ...
    def generation(self) -> Optional[int]: ...
    def request_in_flight(self) -> Optional[int]: ...
