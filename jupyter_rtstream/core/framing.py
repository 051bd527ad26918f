"""RFC 6455 framing: the package's one implementation of build, mask and parse-header.

Pure bytes in, bytes out. The server writes pre-built unmasked text frames (one build per
published message, shared by every client: :mod:`jupyter_rtstream.server.wire`); the
benchmark's raw clients and the tests that speak to the server over a bare socket build
masked client frames and parse the server's frames with the same functions.
"""

from __future__ import annotations

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_FIN = 0x80
_MASKED = 0x80


def mask_payload(mask: bytes, payload: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` (RFC 6455 §5.3); its own inverse."""
    n = len(payload)
    if not n:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def build_frame(opcode: int, payload: bytes, *, mask: bytes | None = None) -> bytes:
    """One final (FIN) frame. Clients must mask (``mask``: 4 random bytes, §5.3); servers
    must not (§5.1), which is what lets the server share a frame's bytes between clients."""
    n = len(payload)
    bit = _MASKED if mask is not None else 0
    if n < 126:
        header = bytes((_FIN | opcode, bit | n))
    elif n <= 0xFFFF:
        header = bytes((_FIN | opcode, bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((_FIN | opcode, bit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return header + payload
    if len(mask) != 4:
        raise ValueError("a frame mask is 4 bytes")
    return header + mask + mask_payload(mask, payload)


def text_frame(text: str, *, mask: bytes | None = None) -> bytes:
    """One text frame carrying ``text`` (UTF-8)."""
    return build_frame(OP_TEXT, text.encode("utf-8"), mask=mask)


def parse_header(data: bytes, pos: int = 0) -> tuple[int, int, int, bytes | None] | None:
    """The header of the frame starting at ``data[pos]``: ``(opcode, start, end, mask)``
    with the payload at ``data[start:end]`` (still masked when ``mask`` is not None), or
    None when ``data`` does not yet hold the whole frame. A tuple, not an object: the
    benchmark client calls this once per frame at hundreds of thousands of frames/s."""
    n = len(data)
    if n - pos < 2:
        return None
    b1 = data[pos + 1]
    length = b1 & 0x7F
    start = pos + 2
    if length == 126:
        if n - pos < 4:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        start = pos + 4
    elif length == 127:
        if n - pos < 10:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        start = pos + 10
    mask: bytes | None = None
    if b1 & _MASKED:
        if n - start < 4:
            return None
        mask = data[start : start + 4]
        start += 4
    end = start + length
    if end > n:
        return None
    return data[pos] & 0x0F, start, end, mask
