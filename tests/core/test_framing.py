"""RFC 6455 framing: the bytes of known frames, masking, and header parsing at every size."""

from __future__ import annotations

import pytest

from jupyter_rtstream.core.framing import (
    OP_CLOSE,
    OP_TEXT,
    build_frame,
    mask_payload,
    parse_header,
    text_frame,
)

MASK = bytes((0x37, 0xFA, 0x21, 0x3D))


def test_rfc_6455_examples() -> None:
    # §5.7: a single-frame unmasked and masked text message "Hello".
    assert text_frame("Hello") == bytes.fromhex("810548656c6c6f")
    assert text_frame("Hello", mask=MASK) == bytes.fromhex("818537fa213d7f9f4d5158")


def test_masking_is_its_own_inverse() -> None:
    payload = bytes(range(256)) * 3
    masked = mask_payload(MASK, payload)
    assert masked != payload and mask_payload(MASK, masked) == payload
    assert mask_payload(MASK, b"") == b""


@pytest.mark.parametrize("size", [0, 125, 126, 0xFFFF, 0x10000])
@pytest.mark.parametrize("mask", [None, MASK])
def test_parse_header_round_trips_every_length_encoding(size: int, mask: bytes | None) -> None:
    payload = b"x" * size
    frame = b"junk" + build_frame(OP_TEXT, payload, mask=mask)
    header = parse_header(frame, 4)
    assert header is not None
    opcode, start, end, got_mask = header
    assert (opcode, end, got_mask) == (OP_TEXT, len(frame), mask)
    body = frame[start:end]
    assert (body if mask is None else mask_payload(mask, body)) == payload
    for cut in range(4, len(frame)):  # every truncation is "not yet whole", never garbage
        if cut - 4 < 16 or cut == len(frame) - 1:
            assert parse_header(frame[:cut], 4) is None


def test_back_to_back_frames_parse_in_order() -> None:
    data = text_frame("a") + build_frame(OP_CLOSE, (1000).to_bytes(2, "big"))
    first = parse_header(data)
    assert first is not None and first[0] == OP_TEXT
    second = parse_header(data, first[2])
    assert second is not None and second[0] == OP_CLOSE
    assert data[second[1] : second[2]] == b"\x03\xe8"


def test_a_mask_is_four_bytes() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        build_frame(OP_TEXT, b"x", mask=b"abc")
