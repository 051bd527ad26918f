"""Encode and decode protocol frames.

Decoding is a fast path plus a slow path: the frame goes straight to pydantic's
``validate_json`` (no intermediate ``json.loads``); only when that fails is the frame parsed
again to tell the client precisely *why* (``INVALID_JSON`` vs ``UNSUPPORTED_VERSION`` vs
``UNKNOWN_MESSAGE_TYPE`` vs ``INVALID_MESSAGE``) and to echo its ``request_id``.
Decoders return the error instead of raising it, so callers branch without try/except.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ErrorCode, ProtocolError
from .messages import (
    _VERSION_RE,
    ClientMessage,
    ServerMessage,
    client_message_adapter,
    server_message_adapter,
)
from .vocabulary import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES


def encode(message: BaseModel) -> str:
    """Serialize a message to the JSON text of one frame."""
    return message.model_dump_json()


def decode_client(frame: str | bytes) -> ClientMessage | ProtocolError:
    """Decode a client frame into a request model, or the :class:`ProtocolError` to answer."""
    try:
        return client_message_adapter.validate_json(frame)
    except ValidationError as exc:
        return _classify(frame, exc, CLIENT_MESSAGE_TYPES)


def decode_server(frame: str | bytes) -> ServerMessage | ProtocolError:
    """Decode a server frame (used by clients); returns a model or a :class:`ProtocolError`."""
    try:
        return server_message_adapter.validate_json(frame)
    except ValidationError as exc:
        return _classify(frame, exc, SERVER_MESSAGE_TYPES)


def request_id_of(frame: str | bytes) -> str | None:
    """Best-effort ``request_id`` of a frame we refuse without decoding it fully."""
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return _request_id(obj)


def _request_id(obj: Any) -> str | None:
    if isinstance(obj, dict):
        rid = obj.get("request_id")
        if isinstance(rid, str):
            # Echo it safely: a JSON-escaped lone surrogate cannot be encoded back to UTF-8.
            return rid[:128].encode("utf-8", "replace").decode("utf-8")
        if isinstance(rid, int) and not isinstance(rid, bool):
            return str(rid)
    return None


def _classify(
    frame: str | bytes, exc: ValidationError, known_types: tuple[str, ...]
) -> ProtocolError:
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError) as err:
        return ProtocolError(ErrorCode.INVALID_JSON, f"frame is not valid JSON: {err}")
    rid = _request_id(obj)
    if not isinstance(obj, dict):
        return ProtocolError(ErrorCode.INVALID_MESSAGE, "a frame must be one JSON object", rid)
    version = obj.get("version")
    if version is not None:
        if not isinstance(version, str):
            return ProtocolError(ErrorCode.INVALID_MESSAGE, "'version' must be a string", rid)
        if not _VERSION_RE.fullmatch(version):
            return ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol version {version!r} is not supported; this side speaks 1.x",
                rid,
            )
    message_type = obj.get("message_type")
    if message_type is None:
        return ProtocolError(ErrorCode.INVALID_MESSAGE, "missing 'message_type'", rid)
    if not isinstance(message_type, str) or message_type not in known_types:
        shown = message_type if isinstance(message_type, str) else type(message_type).__name__
        return ProtocolError(
            ErrorCode.UNKNOWN_MESSAGE_TYPE,
            f"unknown message_type {str(shown)[:40]!r}; expected one of {', '.join(known_types)}",
            rid,
        )
    # Drop the union tag from locations: ('subscribe', 'symbol') -> 'symbol'.
    return ProtocolError(ErrorCode.INVALID_MESSAGE, summarize(exc, skip=1), rid)


def summarize(exc: ValidationError, *, skip: int = 0, limit: int = 3) -> str:
    """Short, human-readable summary of pydantic errors (``field.path: reason; ...``);
    ``skip`` leading location parts (a discriminated union's tag) are left out."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = [str(p) for p in err["loc"]][skip:] or ["message"]
        parts.append(f"{'.'.join(loc)}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
