"""Pre-built WebSocket frames, so a message fanned out to N clients is framed once.

Server-to-client frames are never masked (RFC 6455 §5.1), so with permessage-deflate off
the bytes on the wire are the same for every client and can be shared. The framing itself
is :mod:`jupyter_rtstream.core.framing`'s.
"""

from __future__ import annotations

from ..core.framing import text_frame
from ..core.outbox import Frame


def wire_bytes(frames: list[Frame]) -> bytes:
    """The frames' wire bytes, concatenated; each frame's bytes are built once and cached."""
    if len(frames) == 1:  # the common case at moderate rates: the shared bytes, no copy
        frame = frames[0]
        wire = frame.wire
        if wire is None:
            wire = frame.wire = text_frame(frame.text)
        return wire
    parts = []
    for frame in frames:
        wire = frame.wire
        if wire is None:
            wire = frame.wire = text_frame(frame.text)
        parts.append(wire)
    return b"".join(parts)
