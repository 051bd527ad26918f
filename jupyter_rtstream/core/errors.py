"""Errors and close codes of the rtstream protocol, and the package's one error tree.

Error tree (every error the package raises on purpose; ``except RtstreamError`` catches
them all, and nothing else)::

    RtstreamError                      base of everything this package raises on purpose
    ├── ProtocolError                  a frame or request the server refuses; carries an ErrorCode
    │   └── CloseConnection            a refusal that also closes the socket (carries a CloseCode)
    ├── StoreError                     server.store: the SQLite file cannot be opened or is of a
    │                                  newer schema (also a RuntimeError)
    └── ClientError                    client.errors: anything the client raises on purpose
        ├── DiscoveryError             no server found; the message lists every place tried
        ├── NotConnectedError          no live connection to send on right now
        ├── StreamClosed               the stream is closed for good
        │   └── AuthenticationError    the server refused the credentials (HTTP 401/403)
        ├── ConnectionLost             why the last connection ended (the stream reconnects)
        ├── RequestError               the server answered a request with an ``error`` message
        └── RestError                  client.rest: a REST request answered with an HTTP error
                                       (``status``, ``error_code``, ``error_message``)

Protocol errors never travel as exceptions between processes: every rejected client frame
becomes an ``error`` message whose ``error_code`` is one of the stable :class:`ErrorCode`
strings (REST answers carry the same codes in ``{"error_code", "error_message"}``); only
the cases listed in :class:`CloseCode` end a connection. Analytics input errors
(``validate_rule``, ``check_tick``) are plain ``ValueError`` s: the analytics package is
stdlib-only and its callers turn them into typed answers at the boundary.
"""

from __future__ import annotations

import json
from enum import Enum, IntEnum


class ErrorCode(str, Enum):
    """Stable ``error_code`` strings. Clients branch on these; never rename one."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
    RATE_LIMITED = "RATE_LIMITED"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    #: A tick batch that would register more than ``max_symbols`` instruments (refused whole).
    SYMBOL_LIMIT = "SYMBOL_LIMIT"
    #: An alert rule beyond ``max_rules``.
    RULE_LIMIT = "RULE_LIMIT"
    #: A tick the server refuses as a whole batch, e.g. dated beyond ``max_clock_skew``.
    INVALID_TICK = "INVALID_TICK"
    #: A POSTed tick for a symbol of the shared feed (``bus = "redis"``): read-only here.
    READ_ONLY_SYMBOL = "READ_ONLY_SYMBOL"

    def __str__(self) -> str:
        return self.value


class CloseCode(IntEnum):
    """WebSocket close codes the server uses, with when and why."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


CLOSE_CODE_EXPLANATIONS: dict[CloseCode, str] = {
    CloseCode.NORMAL_CLOSURE: "normal closure; the client asked to leave",
    CloseCode.GOING_AWAY: "server shutting down; reconnect after retry_after seconds",
    CloseCode.UNSUPPORTED_DATA: "binary frame received; the protocol is JSON text frames only",
    CloseCode.POLICY_VIOLATION: (
        "sustained flooding over the rate limit (RATE_LIMITED), or too many connections of"
        " one user (CONNECTION_LIMIT); retry after retry_after"
    ),
    CloseCode.MESSAGE_TOO_BIG: "client frame over the size limit; do not resend that frame",
    CloseCode.INTERNAL_ERROR: "unexpected server error; reconnect with backoff",
    CloseCode.TRY_AGAIN_LATER: "client too slow for must-deliver messages; reconnect and resume",
}


def close_reason(reason: str, retry_after: float | None = None) -> str:
    """Build the short JSON close reason (must stay under the 123-byte WebSocket limit)."""
    body: dict[str, object] = {"reason": reason}
    if retry_after is not None:
        body["retry_after"] = round(retry_after, 2)
    return json.dumps(body, separators=(",", ":"))


class RtstreamError(Exception):
    """Base class of every error this package raises on purpose."""


class ProtocolError(RtstreamError):
    """A client frame or request that the server refuses with an ``error`` message."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class CloseConnection(ProtocolError):
    """A refusal that also ends the connection with ``close_code``."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        close_code: CloseCode,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(code, message, request_id)
        self.close_code = close_code
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """The JSON close reason sent with the close frame."""
        return close_reason(self.code.value, self.retry_after)
