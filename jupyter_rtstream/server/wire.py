"""Pre-built WebSocket frames, so a message fanned out to N clients is framed once.

Server-to-client frames are never masked (RFC 6455 §5.1), so with permessage-deflate off
the bytes on the wire are the same for every client and can be shared.
"""

from __future__ import annotations

import struct

from ..core.hub import Frame

_FIN_TEXT = 0x81


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented text frame carrying ``text``."""
    payload = text.encode("utf-8")
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", _FIN_TEXT, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", _FIN_TEXT, 126, n)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, n)
    return header + payload


def wire_bytes(frames: list[Frame]) -> bytes:
    """The frames' wire bytes, concatenated; each frame's bytes are built once and cached."""
    parts = []
    for frame in frames:
        wire = frame.wire
        if wire is None:
            wire = frame.wire = text_frame(frame.text)
        parts.append(wire)
    return b"".join(parts)
