"""Framing between HTTP workers and the sequencer process: u32be length || msgpack. Pure.

Worker -> sequencer:
    ["a", req_id, entry_bytes, blob]    append (or find) an entry; blob: its DSSE envelope
                                        (stored content-addressed with it) or None
    ["s", req_id]                       ask for the sequencer's metrics text
Sequencer -> worker:
    ["b", size, checkpoint, [[req_id, index, created], ...]]
                                        one committed batch's answers for this connection
    ["e", req_id, code, message]        a request failed (nothing was written for it)
    ["s", req_id, metrics_text]
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

MAX_FRAME = 128 << 20  # a frame may carry a whole (up to 64 MiB) envelope
_LEN = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent something that is not a frame; the connection must be dropped."""


def encode(msg: list[Any]) -> bytes:
    return b"".join(encode_parts(msg))


def encode_parts(msg: list[Any]) -> tuple[bytes, bytes]:
    """Header and body of a frame, to be written one after the other without joining them
    (a frame may hold a large envelope: no extra copy)."""
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise FrameError("frame too large")
    return _LEN.pack(len(body)), body


class FrameReader:
    """Accumulates bytes and yields complete decoded frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[list[Any]]:
        self._buf += data
        out: list[list[Any]] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME:
                raise FrameError("frame too large")
            if len(buf) - pos - 4 < n:
                break
            view = memoryview(buf)
            part = view[pos + 4 : pos + 4 + n]  # decoded in place: no copy of a large frame
            try:
                msg = msgpack.unpackb(part, raw=False)
            except (ValueError, msgpack.UnpackException) as exc:
                raise FrameError("undecodable frame") from exc
            finally:
                part.release()
                view.release()
            if not isinstance(msg, list) or not msg:
                raise FrameError("frame is not a message")
            out.append(msg)
            pos += 4 + n
        if pos:
            del buf[:pos]
        return out
