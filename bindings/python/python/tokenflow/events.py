"""The events :meth:`tokenflow.TokenFlow.poll_output` hands out, one class each.

``LoginRequired`` and ``Failed`` carry, in ``error``, the exception to raise for the callers
waiting on a token.
"""

from ._core import AccessReady, Failed, LoginRequired, OtherEvent, TokensCleared, TokensUpdated

__all__ = [
    "TokensUpdated",
    "TokensCleared",
    "AccessReady",
    "LoginRequired",
    "Failed",
    "OtherEvent",
]
