"""Frames of the guest agent protocol: encoding, incremental decoding, finding the start of a session."""

from __future__ import annotations

import pytest

from lima_core.guestagent import wire


def test_frames_survive_any_split() -> None:
    stream = (wire.hello({"versions": [1]}) + wire.control(wire.PORTS, {"added": [["tcp", "::", 80]]})
              + wire.frame(wire.DATA, 7, b"x" * 70000) + wire.window(7, 65536) + wire.frame(wire.EOF, 7))
    for step in (1, 5, 4096, len(stream)):
        dec = wire.Decoder(synced=True)
        frames = []
        for i in range(0, len(stream), step):
            frames += dec.feed(stream[i:i + step])
        assert [(k, c) for k, c, _ in frames] == [(wire.HELLO, 0), (wire.PORTS, 0), (wire.DATA, 7), (wire.WINDOW, 7),
                                                   (wire.EOF, 7)]
        assert wire.load(wire.HELLO, frames[0][2]) == {"versions": [1]}
        assert frames[2][2] == b"x" * 70000
        assert wire.window_increment(frames[3][2]) == 65536


def test_an_unsynced_decoder_skips_to_the_first_hello() -> None:
    """Bytes of an earlier session (a partial frame, even a stray magic) before a new HELLO are skipped."""
    old = wire.frame(wire.DATA, 3, b"LIMA-GA\n" + b"z" * 100)[:50]
    stream = b"\x00garbage" + old + wire.hello({"versions": [1]}) + wire.frame(wire.PING, 0, b"t")
    for step in (1, 3, len(stream)):
        dec = wire.Decoder(synced=False)
        frames = []
        for i in range(0, len(stream), step):
            frames += dec.feed(stream[i:i + step])
        assert [k for k, _, _ in frames] == [wire.HELLO, wire.PING]


def test_unknown_kinds_and_oversized_frames_are_protocol_errors() -> None:
    with pytest.raises(wire.ProtocolError, match="unknown frame kind 0x7f"):
        wire.Decoder().feed(wire.HEADER.pack(0x7F, 0, 0))
    with pytest.raises(wire.ProtocolError, match="larger than"):
        wire.Decoder().feed(wire.HEADER.pack(wire.DATA, 1, wire.MAX_PAYLOAD + 1))
    with pytest.raises(wire.ProtocolError, match="bad JSON"):
        wire.load(wire.PORTS, b"{nope")
    with pytest.raises(wire.ProtocolError, match="must be an object"):
        wire.load(wire.PORTS, b"[1]")
    with pytest.raises(wire.ProtocolError, match="must start with"):
        wire.load(wire.HELLO, b"{}")
    with pytest.raises(wire.ProtocolError, match="4 bytes"):
        wire.window_increment(b"12")
