"""Where the drivers keep tokens between runs.

A store's ``save`` must not return before the tokens are safe: the drivers use a new access
token only after ``save`` returned, so a rotated, single-use refresh token is never lost to a
crash between the answer and the write.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Optional, Protocol, Union, runtime_checkable

from ._core import StoredTokens

__all__ = ["TokenStore", "FileStore", "MemoryStore"]


@runtime_checkable
class TokenStore(Protocol):
    """What a token store does. Implement these three methods to keep tokens elsewhere (a
    database row, a secrets manager)."""

    def load(self) -> Optional[StoredTokens]:
        """The stored tokens, or ``None`` when nothing is stored. Raise
        :class:`tokenflow.StoredTokensError` for data that cannot be read."""
        ...

    def save(self, tokens: StoredTokens) -> None:
        """Replaces the stored tokens, durably, before returning."""
        ...

    def clear(self) -> None:
        """Deletes the stored tokens."""
        ...


class FileStore:
    """Tokens in a JSON file, readable by its owner only (mode 0600).

    ``save`` writes a temporary file beside the target, flushes it to disk and renames it over
    the target, so a reader (or a crash) sees the old tokens or the new ones, never half of
    each. An unreadable file is left untouched for a person to look at: ``load`` raises
    :class:`tokenflow.StoredTokensError`.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = os.fspath(path)

    def load(self) -> Optional[StoredTokens]:
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        return StoredTokens.from_json(data)

    def save(self, tokens: StoredTokens) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, temporary = tempfile.mkstemp(
            prefix=".tokenflow-", suffix=".tmp", dir=directory
        )
        try:
            # mkstemp creates the file 0600 already; say so in case of an odd umask policy.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(tokens.to_json())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise
        _fsync_directory(directory)

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"


class MemoryStore:
    """Tokens in memory only: for tests, and for processes that log in again at each start."""

    def __init__(self, tokens: Optional[StoredTokens] = None) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()

    def load(self) -> Optional[StoredTokens]:
        with self._lock:
            return self._tokens

    def save(self, tokens: StoredTokens) -> None:
        with self._lock:
            self._tokens = tokens

    def clear(self) -> None:
        with self._lock:
            self._tokens = None

    def __repr__(self) -> str:
        return f"MemoryStore(holding={self._tokens is not None})"


def _fsync_directory(directory: str) -> None:
    # The rename itself is durable only once the directory is; not every platform can open
    # a directory for this, and those that cannot do not need it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
