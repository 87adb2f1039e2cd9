"""The worker protocol's frames: binary query/done frames between JSON lines, split from a
stream that arrives in arbitrary pieces, with console noise skipped."""

from __future__ import annotations

import pytest

from scaler.worker import protocol


def stream() -> tuple[bytes, list]:
    parts = [b"kernel: noise line\n", protocol.encode({"type": "ready", "x": 1}),
             protocol.query_frame(7, 1), protocol.done_frame(7, 10, 2**40 + 3),
             protocol.query_frame(2**40, 4), protocol.encode({"type": "stop"}),
             protocol.done_frame(0, 0, 0)]
    want = [{"type": "ready", "x": 1}, ("Q", 7, 1), ("D", 7, 10, 2**40 + 3),
            ("Q", 2**40, 4), {"type": "stop"}, ("D", 0, 0, 0)]
    return b"".join(parts), want


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 13, 1 << 16])
def test_frames_and_lines_come_out_in_order_however_the_stream_is_cut(piece):
    data, want = stream()
    reader, got = protocol.FrameReader(), []
    for i in range(0, len(data), piece):
        reader.feed(data[i:i + piece])
        got.extend(reader.items())
    assert got == want
    assert reader.rest() == b""


def test_items_left_unread_stay_for_the_next_reader():
    """A consumer that stops at ``stop`` leaves what follows in ``rest()`` (the worker
    hands it back to its reader thread)."""
    data, _ = stream()
    reader = protocol.FrameReader(data)
    items = reader.items()
    for item in items:
        if isinstance(item, dict) and item["type"] == "stop":
            break
    items.close()
    assert reader.rest() == protocol.done_frame(0, 0, 0)


def test_frames_carry_bytes_a_line_reader_would_split():
    """Frame fields may hold newline and NUL bytes: the frame's size, not a newline, ends
    it."""
    frame = protocol.done_frame(0x0A0A, 0x0A00, 0x0A)
    assert b"\n" in frame
    reader = protocol.FrameReader(frame + protocol.encode({"type": "served"}))
    assert list(reader.items()) == [("D", 0x0A0A, 0x0A00, 0x0A), {"type": "served"}]


def test_an_unknown_frame_type_is_an_error():
    reader = protocol.FrameReader(b"\0Zxxxxxxxxxxxx")
    with pytest.raises(ValueError, match="unknown frame type"):
        list(reader.items())
