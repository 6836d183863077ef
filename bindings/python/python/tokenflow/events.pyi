"""Type stubs of the flow's events."""

from typing import final

from ._core import StoredTokens
from .errors import LoginRequired as LoginRequiredError
from .errors import TokenRequestFailed

@final
class TokensUpdated:
    """Store `tokens` durably before polling again."""

    @property
    def tokens(self) -> StoredTokens: ...

@final
class TokensCleared:
    """Delete the stored tokens."""

@final
class AccessReady:
    @property
    def generation(self) -> int: ...

@final
class LoginRequired:
    @property
    def reason(self) -> str: ...
    @property
    def error(self) -> LoginRequiredError: ...

@final
class Failed:
    @property
    def error(self) -> TokenRequestFailed: ...

@final
class OtherEvent:
    @property
    def name(self) -> str: ...
