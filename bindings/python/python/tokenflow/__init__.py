"""tokenflow: keeps an OAuth 2.0 client holding a valid access token.

The core is :class:`TokenFlow`, a state machine that never does IO (the Rust crate
``tokenflow``). The drivers do the IO: :mod:`tokenflow.httpx` (``httpx.Client`` and
``httpx.AsyncClient``) and :mod:`tokenflow.requests`, with a token store from
:mod:`tokenflow.store`. Events of the flow are in :mod:`tokenflow.events`, exceptions in
:mod:`tokenflow.errors`.
"""

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
from .errors import (
    ConfigError,
    InvalidInput,
    LoginRequired,
    MalformedTokenResponse,
    StoredTokensError,
    TokenEndpointError,
    TokenflowError,
    TokenRequestFailed,
    TokenTransportError,
)
from .store import FileStore, MemoryStore, TokenStore

__all__ = [
    "Access",
    "Bearer",
    "Config",
    "Credentials",
    "HttpRequest",
    "Idle",
    "StoredTokens",
    "TokenFlow",
    "TokenflowError",
    "ConfigError",
    "InvalidInput",
    "LoginRequired",
    "MalformedTokenResponse",
    "StoredTokensError",
    "TokenEndpointError",
    "TokenRequestFailed",
    "TokenTransportError",
    "FileStore",
    "MemoryStore",
    "TokenStore",
]
