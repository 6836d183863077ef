"""The exceptions tokenflow raises.

Every message comes from the Rust core's error text, which never holds a password, a client
secret or a token (text a server echoes back is scrubbed of the secrets the flow knows), and
no exception keeps a secret in an attribute, so ``str`` and ``repr`` are safe to log.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "TokenflowError",
    "ConfigError",
    "StoredTokensError",
    "InvalidInput",
    "LoginRequired",
    "TokenRequestFailed",
    "TokenEndpointError",
    "MalformedTokenResponse",
    "TokenTransportError",
]


class TokenflowError(Exception):
    """The base of every tokenflow exception."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(TokenflowError, ValueError):
    """A configuration the core refused (a bad URL, a missing secret, a bad scope, …)."""


class StoredTokensError(TokenflowError, ValueError):
    """Stored tokens that cannot be used: unreadable JSON, an unknown format version, a token
    that cannot be sent. The message never quotes the stored data."""


class InvalidInput(TokenflowError, ValueError):
    """Something a host reported that cannot be an HTTP answer (a status out of range, an
    unknown failure kind)."""


class LoginRequired(TokenflowError):
    """No token can be had without a new login.

    ``reason`` is ``no_tokens`` (nothing was ever obtained, or no credentials were given),
    ``no_refresh_token``, ``refresh_token_rejected`` (``invalid_grant``: the stored tokens were
    cleared), ``refresh_token_expired``, ``refresh_outcome_unknown`` or ``other``.
    ``error_code`` is the server's OAuth error code when it gave one.
    """

    def __init__(
        self, message: str, *, reason: str = "no_tokens", error_code: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.error_code = error_code


class TokenRequestFailed(TokenflowError):
    """A token request failed for good, after its retries.

    ``grant`` is the grant type that was used, ``attempts`` how many times the request was
    sent, ``status`` the HTTP status of the last answer (if any), ``error_code`` the server's
    OAuth error code (if any).
    """

    def __init__(
        self,
        message: str,
        *,
        grant: str = "",
        attempts: int = 0,
        status: Optional[int] = None,
        error_code: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.grant = grant
        self.attempts = attempts
        self.status = status
        self.error_code = error_code


class TokenEndpointError(TokenRequestFailed):
    """The token endpoint refused: an OAuth error (``error_code``) or a non-success status
    without one (a gateway's error page)."""


class MalformedTokenResponse(TokenRequestFailed):
    """The token endpoint answered, but not with usable tokens: ``problem`` says what is
    wrong (not JSON, a missing ``access_token``, an unknown token type, a body too large…)."""

    def __init__(self, message: str, *, problem: str = "", **details: object) -> None:
        super().__init__(message, **details)  # type: ignore[arg-type]
        self.problem = problem


class TokenTransportError(TokenRequestFailed):
    """No answer could be had from the token endpoint. ``kind`` is ``not_sent``,
    ``timed_out``, ``interrupted``, ``body_too_large`` or ``other``."""

    def __init__(self, message: str, *, kind: str = "other", **details: object) -> None:
        super().__init__(message, **details)  # type: ignore[arg-type]
        self.kind = kind
