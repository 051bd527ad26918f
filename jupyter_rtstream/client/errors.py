"""Errors the client raises: the ``ClientError`` branch of the package's one error tree.

The tree is drawn whole in :mod:`jupyter_rtstream.core.errors`; ``RestError`` lives beside
the REST client in :mod:`.rest`.
"""

from __future__ import annotations

from ..core.errors import RtstreamError


class ClientError(RtstreamError):
    """Base class of the client's errors."""


class DiscoveryError(ClientError):
    """No Jupyter server could be found; ``tried`` lists each source and why it did not fit."""

    def __init__(self, tried: list[str]) -> None:
        self.tried = tried
        lines = "\n".join(f"  - {item}" for item in tried)
        super().__init__(
            "could not find a Jupyter server running jupyter-rtstream. Tried:\n"
            f"{lines}\n"
            "Pass url= and token= to connect(), or set JUPYTER_RTSTREAM_URL and "
            "JUPYTER_RTSTREAM_TOKEN."
        )


class NotConnectedError(ClientError):
    """The stream is (re)connecting: there is no live connection to send on right now."""


class StreamClosed(ClientError):
    """The stream is closed for good: after :meth:`Stream.close` or a final error."""


class AuthenticationError(StreamClosed):
    """The server refused our credentials (HTTP 401/403). Final: the client never retries."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestError(ClientError):
    """The server refused a request (``subscribe``, ``unsubscribe``, ``ping``)."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class ConnectionLost(ClientError):
    """Why the last connection ended (kept in ``stream.last_error``; the stream reconnects).

    The close frame itself (code, reason, ``retry_after``) is ``stream.last_close``, which a
    later failed attempt does not overwrite.
    """
