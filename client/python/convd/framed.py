# SPDX-License-Identifier: Apache-2.0
"""The framed protocol's codec: messages to bytes and back, with no I/O.

The byte layouts are docs/PROTOCOL.md's ("Framed"), version 1; this module follows
proto/framed.c, the daemon's own codec, check for check. Integers are little-endian.

Encoders (``encode_hello``, ``encode_data``, ...) return the bytes of one message. The
:class:`Decoder` takes bytes in chunks of any size and yields messages; it checks what a
receiver must check (lengths, types in their order, strings, sequence numbers, frame
indices) and raises :class:`~convd.errors.ProtocolError` carrying the ERROR code to answer.

Samples: :func:`encode_samples` and :func:`decode_samples` convert float32 frames to and
from the wire formats ``F32LE`` (bit for bit) and ``S16LE`` (``x / 32768`` one way,
``round(clamp(y, -1, 32767/32768) * 32768)`` with halves away from zero the other).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator, List, Optional, Union

import numpy as np

from .errors import ErrorCode, ProtocolError

__all__ = [
    "VERSION", "VERSIONS",
    "HELLO", "ACCEPT", "DATA", "END", "PING", "PONG", "ERROR", "BYE",
    "F32LE", "S16LE", "PROCESS", "SUBSCRIBE",
    "MAX_STRING", "MIN_MESSAGE", "DEFAULT_MAX_MESSAGE", "MAX_MESSAGE_LIMIT",
    "HEADER_BYTES", "DATA_HEADER_BYTES",
    "Hello", "Accept", "Data", "Message", "Decoder",
    "encode_hello", "encode_accept", "encode_data", "encode_end", "encode_bye",
    "encode_ping", "encode_pong", "encode_error",
    "encode_samples", "decode_samples", "sample_bytes", "format_of", "type_name",
    "s16_from_float", "s16_to_float",
]

VERSION = 1
"""The protocol version this module speaks."""
VERSIONS = (1,)

HELLO, ACCEPT, DATA, END, PING, PONG, ERROR, BYE = 1, 2, 3, 4, 5, 6, 7, 8
_TYPE_NAMES = {HELLO: "HELLO", ACCEPT: "ACCEPT", DATA: "DATA", END: "END", PING: "PING",
               PONG: "PONG", ERROR: "ERROR", BYE: "BYE"}

F32LE, S16LE = 1, 2
PROCESS, SUBSCRIBE = 0, 1

MAX_STRING = 1024
"""Bytes of one string, at most."""
MIN_MESSAGE = 1024
"""The smallest max_message a server may announce."""
DEFAULT_MAX_MESSAGE = 1 << 20
MAX_MESSAGE_LIMIT = 64 << 20
RECV_MIN_MESSAGE = 8192
"""Clients accept messages of at least this many bytes whatever the server announces."""

HEADER_BYTES = 5
"""u32 length + u8 type."""
DATA_HEADER_BYTES = 21
"""The header, u32 seq, u64 first_frame, u32 dropped."""

_HELLO_FIXED = 14   # version, role, format, rate, channels, block: the payload before the strings
_ACCEPT_FIXED = 23  # version, format, rate, in/out channels, block, latency, max_message
_DATA_FIXED = 16    # seq, first_frame, dropped


def type_name(t: int) -> str:
    """"HELLO" ... "BYE"; "unknown" for anything else."""
    return _TYPE_NAMES.get(t, "unknown")


def sample_bytes(fmt: int) -> int:
    """Bytes per sample of a wire format: 4 (F32LE), 2 (S16LE), 0 for anything else."""
    return 4 if fmt == F32LE else 2 if fmt == S16LE else 0


def format_of(fmt: Union[str, int]) -> int:
    """F32LE or S16LE from "f32", "f32le", "float", "s16", "s16le", "int16" (any case) or
    the wire value."""
    if isinstance(fmt, int) and not isinstance(fmt, bool):
        if sample_bytes(fmt):
            return fmt
    elif isinstance(fmt, str):
        f = fmt.lower()
        if f in ("f32", "f32le", "float"):
            return F32LE
        if f in ("s16", "s16le", "int16"):
            return S16LE
    raise ValueError(f"sample format {fmt!r}: f32 or s16")


# ---- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """HELLO: what a client asks for."""

    role: int = PROCESS
    """PROCESS (0) or SUBSCRIBE (1)"""
    format: int = F32LE
    rate: int = 0
    """frames per second of the client's stream; 0 unspecified"""
    channels: int = 0
    """process: channels of the frames sent (0 = the model's); subscribe: expected (0 any)"""
    block: int = 0
    """frames per DATA the client sends at most; 0 = any (the listener's block)"""
    model: str = ""
    """the model; "" = the listener's default"""
    stream: str = ""
    """process: publish the output under this name ("" = no); subscribe: the stream"""
    version: int = VERSION


@dataclass(frozen=True)
class Accept:
    """ACCEPT: what the server granted."""

    format: int
    rate: int
    """the stream's rate; 0 unknown"""
    in_channels: int
    """channels of the frames the client sends"""
    out_channels: int
    """channels of the frames the server sends"""
    block: int
    """the server's DATA carry at most this many frames; 0 = no bound"""
    latency: int
    """frames by which the output lags the input"""
    max_message: int
    """the longest message (its length field) the server accepts and sends"""
    model: str
    version: int = VERSION


@dataclass(frozen=True)
class Data:
    """DATA: frames, in wire form (``samples``); :func:`decode_samples` makes floats."""

    seq: int
    first_frame: int
    dropped: int
    samples: bytes
    n_frames: int


@dataclass(frozen=True)
class Message:
    """A decoded message: ``type`` and what it carries (``hello``, ``accept``, ``data``,
    ``token`` for PING/PONG, ``code`` and ``text`` for ERROR)."""

    type: int
    hello: Optional[Hello] = None
    accept: Optional[Accept] = None
    data: Optional[Data] = None
    token: int = 0
    code: int = 0
    text: str = ""

    @property
    def name(self) -> str:
        return type_name(self.type)


# ---- encoders ------------------------------------------------------------------------------


def _string(s: str, what: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > MAX_STRING:
        raise ValueError(f"{what}: {len(b)} bytes, at most {MAX_STRING}")
    if b"\0" in b:
        raise ValueError(f"{what}: contains a NUL character")
    return struct.pack("<H", len(b)) + b


def _message(t: int, payload: bytes) -> bytes:
    return struct.pack("<IB", 1 + len(payload), t) + payload


def encode_hello(h: Hello) -> bytes:
    """HELLO: 19 + M + S bytes (docs/PROTOCOL.md, "HELLO")."""
    payload = struct.pack("<HBBIHI", h.version, h.role, h.format, h.rate, h.channels, h.block)
    return _message(HELLO, payload + _string(h.model, "model name") + _string(h.stream, "stream name"))


def encode_accept(a: Accept) -> bytes:
    """ACCEPT (servers send it; for tests and tools)."""
    payload = struct.pack("<HBIHHIII", a.version, a.format, a.rate, a.in_channels,
                          a.out_channels, a.block, a.latency, a.max_message)
    return _message(ACCEPT, payload + _string(a.model, "model name"))


def encode_data(seq: int, first_frame: int, samples: Union[bytes, bytearray, memoryview],
                dropped: int = 0) -> bytes:
    """DATA carrying ``samples``: frames already in the session's wire format."""
    return struct.pack("<IBIQI", 17 + len(samples), DATA, seq & 0xFFFFFFFF, first_frame,
                       dropped) + bytes(samples)


def encode_end() -> bytes:
    return _message(END, b"")


def encode_bye() -> bytes:
    return _message(BYE, b"")


def encode_ping(token: int) -> bytes:
    return _message(PING, struct.pack("<Q", token))


def encode_pong(token: int) -> bytes:
    return _message(PONG, struct.pack("<Q", token))


def encode_error(code: int, text: str) -> bytes:
    """ERROR; a text over 1024 bytes is cut (at a character boundary)."""
    b = text.encode("utf-8").replace(b"\0", b"?")
    if len(b) > MAX_STRING:
        b = b[:MAX_STRING].decode("utf-8", "ignore").encode("utf-8")
    return _message(ERROR, struct.pack("<HH", code, len(b)) + b)


# ---- samples -------------------------------------------------------------------------------


def s16_to_float(x: np.ndarray) -> np.ndarray:
    """int16 -> float32: x / 32768, exact."""
    return np.asarray(x, dtype=np.int16).astype(np.float32) * np.float32(1.0 / 32768.0)


def s16_from_float(y: np.ndarray) -> np.ndarray:
    """float -> int16: round(clamp(y, -1, 32767/32768) * 32768), halves away from zero
    (C's round()); NaN -> 0, +Inf -> 32767, -Inf -> -32768."""
    v = np.asarray(y, dtype=np.float32).astype(np.float64)
    v = np.clip(v, -1.0, 32767.0 / 32768.0) * 32768.0  # exact: a power of two
    v = np.where(np.isnan(v), 0.0, v)
    r = np.copysign(np.floor(np.abs(v) + 0.5), v)  # exact in float64
    return r.astype(np.int16)


def encode_samples(frames: np.ndarray, fmt: int) -> bytes:
    """Float frames (any shape; C order) -> wire bytes of ``fmt``."""
    if fmt == F32LE:
        return np.ascontiguousarray(frames, dtype="<f4").tobytes()
    if fmt == S16LE:
        return s16_from_float(frames).astype("<i2", copy=False).tobytes()
    raise ValueError(f"sample format {fmt}: 1 (f32le) or 2 (s16le)")


def decode_samples(samples: Union[bytes, bytearray, memoryview], fmt: int,
                   channels: int) -> np.ndarray:
    """Wire bytes of ``fmt`` -> float32 array of shape (frames, channels) (a new array)."""
    if fmt == F32LE:
        a = np.frombuffer(samples, dtype="<f4").astype(np.float32)
    elif fmt == S16LE:
        a = s16_to_float(np.frombuffer(samples, dtype="<i2"))
    else:
        raise ValueError(f"sample format {fmt}: 1 (f32le) or 2 (s16le)")
    return a.reshape(-1, channels)


# ---- the decoder ---------------------------------------------------------------------------

_START, _OPEN, _ENDED, _CLOSED = range(4)


def _valid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8", "strict")  # refuses overlong forms, surrogates, > U+10FFFF
    except UnicodeDecodeError:
        return False
    return b"\0" not in b


class Decoder:
    """An incremental decoder of one direction of a framed connection.

    ``side`` is the side that receives: "client" (decodes what a server sends) or "server".
    Feed bytes with :meth:`feed`; take messages with :meth:`next` (None when more bytes are
    needed) or by iterating :meth:`messages`. A malformed message raises
    :class:`~convd.errors.ProtocolError` (its ``code`` is what to answer in ERROR); the
    decoder is unusable afterwards.
    """

    def __init__(self, side: str = "client", max_message: int = RECV_MIN_MESSAGE) -> None:
        if side not in ("client", "server"):
            raise ValueError("side: 'client' or 'server'")
        self.side = side
        self.max_message = self._check_max(max_message)
        self._buf = bytearray()
        self._pos = 0
        self._state = _START
        self._role = PROCESS
        self._fmt = 0
        self._channels = 0
        self._frame_bytes = 0
        self._data_seen = False
        self._next_seq = 0
        self._next_frame = 0
        self._failed: Optional[ProtocolError] = None

    @staticmethod
    def _check_max(n: int) -> int:
        if not MIN_MESSAGE <= n <= MAX_MESSAGE_LIMIT:
            raise ValueError(f"max_message {n}: {MIN_MESSAGE}..{MAX_MESSAGE_LIMIT}")
        return n

    def set_max_message(self, n: int) -> None:
        """The longest ``length`` accepted from now on."""
        self.max_message = self._check_max(n)

    def set_data_layout(self, fmt: int, channels: int) -> None:
        """The DATA layout, once the session is accepted (a client decoder sets it from
        ACCEPT by itself; a server decoder needs it)."""
        if not sample_bytes(fmt) or channels < 1:
            raise ValueError("a valid format and at least one channel")
        self._fmt, self._channels = fmt, channels
        self._frame_bytes = sample_bytes(fmt) * channels

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole message."""
        return len(self._buf) - self._pos

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Appends received bytes."""
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def finish(self) -> None:
        """At the end of the connection: raises ProtocolError if it ended inside a message."""
        n = self.pending
        if n == 0:
            return
        if n < 4:
            raise ProtocolError(
                f"the connection ended inside a message's length field ({n} of 4 bytes)",
                ErrorCode.BAD_MESSAGE)
        need = struct.unpack_from("<I", self._buf, self._pos)[0]
        t = self._buf[self._pos + 4] if n > 4 else 0
        raise ProtocolError(
            f"the connection ended inside a {type_name(t)} message ({n} of {need + 4} bytes)",
            ErrorCode.BAD_MESSAGE)

    def messages(self) -> Iterator[Message]:
        """Every whole message received so far."""
        while True:
            m = self.next()
            if m is None:
                return
            yield m

    def _fail(self, code: int, text: str) -> ProtocolError:
        self._failed = ProtocolError(text, code)
        return self._failed

    def next(self) -> Optional[Message]:
        """The next whole message, or None until more bytes come."""
        if self._failed is not None:
            raise self._failed
        n = len(self._buf) - self._pos
        if n < 4:
            return None
        need = struct.unpack_from("<I", self._buf, self._pos)[0]
        if need == 0:
            raise self._fail(ErrorCode.BAD_MESSAGE, "message length 0 (at least 1: the type)")
        if need > self.max_message:
            raise self._fail(ErrorCode.TOO_LARGE,
                             f"message of {need} bytes, larger than the limit of {self.max_message}")
        if n < 5:
            return None
        self._check_type(self._buf[self._pos + 4])
        if n < 4 + need:
            return None
        start = self._pos + 5
        payload = bytes(self._buf[start: start + need - 1])
        t = self._buf[self._pos + 4]
        self._pos += 4 + need
        return self._parse(t, payload)

    def _check_type(self, t: int) -> None:
        server = self.side == "server"
        name = type_name(t)
        if not HELLO <= t <= BYE:
            raise self._fail(ErrorCode.BAD_MESSAGE,
                             f"unknown message type {t} (types are 1 to 8: HELLO ... BYE)")
        if server and t == ACCEPT:
            raise self._fail(ErrorCode.BAD_MESSAGE, "ACCEPT from a client (servers send it)")
        if not server and t == HELLO:
            raise self._fail(ErrorCode.BAD_MESSAGE, "HELLO from a server (clients send it)")
        if self._state == _CLOSED:
            raise self._fail(ErrorCode.BAD_MESSAGE, f"{name} after BYE")
        if self._state == _START:
            if t in (ERROR, BYE, HELLO, ACCEPT):
                return
            raise self._fail(ErrorCode.BAD_MESSAGE,
                             f"{name} before HELLO (a client's first message is HELLO)" if server
                             else f"{name} before ACCEPT (a server's first message is ACCEPT or ERROR)")
        if t in (HELLO, ACCEPT):
            raise self._fail(ErrorCode.BAD_MESSAGE, f"{name} after {name}")
        if t == DATA:
            if server and self._role == SUBSCRIBE:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 "DATA from a subscriber (subscribers only receive)")
            if self._state == _ENDED:
                raise self._fail(ErrorCode.BAD_MESSAGE, "DATA after END")
            if self._frame_bytes == 0:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 "DATA before the session was accepted (wait for ACCEPT)")
        if t == END and self._state == _ENDED:
            raise self._fail(ErrorCode.BAD_MESSAGE, "END after END")

    def _string(self, p: bytes, pos: int, msg: str, what: str) -> "tuple[str, int]":
        if len(p) - pos < 2:
            raise self._fail(ErrorCode.BAD_MESSAGE,
                             f"{msg} truncated: the {what}'s length is missing (payload of {len(p)} bytes)")
        n = struct.unpack_from("<H", p, pos)[0]
        pos += 2
        if n > MAX_STRING:
            raise self._fail(ErrorCode.BAD_MESSAGE,
                             f"{msg}: {what} of {n} bytes, at most {MAX_STRING} allowed")
        if n > len(p) - pos:
            raise self._fail(ErrorCode.BAD_MESSAGE,
                             f"{msg} truncated: {what} of {n} bytes, only {len(p) - pos} bytes left in the payload")
        b = p[pos: pos + n]
        if not _valid_utf8(b):
            raise self._fail(ErrorCode.BAD_MESSAGE, f"{msg}: {what} is not UTF-8 text")
        return b.decode("utf-8"), pos + n

    def _parse(self, t: int, p: bytes) -> Message:
        n = len(p)
        if t == HELLO:
            if n < 2:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"HELLO truncated: {n} bytes of payload, at least {_HELLO_FIXED + 4} expected")
            version = struct.unpack_from("<H", p)[0]
            if version not in VERSIONS:
                raise self._fail(ErrorCode.UNSUPPORTED_VERSION,
                                 f"protocol version {version} is not supported; supported versions: "
                                 + ",".join(map(str, VERSIONS)))
            if n < _HELLO_FIXED + 4:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"HELLO truncated: {n} bytes of payload, at least {_HELLO_FIXED + 4} expected")
            _, role, fmt, rate, channels, block = struct.unpack_from("<HBBIHI", p)
            model, pos = self._string(p, _HELLO_FIXED, "HELLO", "model name")
            stream, pos = self._string(p, pos, "HELLO", "stream name")
            if pos != n:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"HELLO: {n - pos} unexpected bytes after the stream name")
            if role not in (PROCESS, SUBSCRIBE):
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"HELLO: role {role} unknown (0 process, 1 subscribe)")
            if not sample_bytes(fmt):
                raise self._fail(ErrorCode.BAD_FORMAT,
                                 f"HELLO: sample format {fmt} unknown (1 f32le, 2 s16le)")
            if role == SUBSCRIBE and not stream:
                raise self._fail(ErrorCode.BAD_MESSAGE, "HELLO: subscribe without a stream name")
            self._role = role
            self._state = _OPEN
            return Message(HELLO, hello=Hello(role, fmt, rate, channels, block, model, stream, version))
        if t == ACCEPT:
            if n < _ACCEPT_FIXED + 2:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"ACCEPT truncated: {n} bytes of payload, at least {_ACCEPT_FIXED + 2} expected")
            version, fmt, rate, inch, outch, block, latency, maxm = struct.unpack_from("<HBIHHIII", p)
            model, pos = self._string(p, _ACCEPT_FIXED, "ACCEPT", "model name")
            if pos != n:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"ACCEPT: {n - pos} unexpected bytes after the model name")
            if version not in VERSIONS:
                raise self._fail(ErrorCode.UNSUPPORTED_VERSION,
                                 f"ACCEPT: protocol version {version}, this client speaks "
                                 + ",".join(map(str, VERSIONS)))
            if not sample_bytes(fmt):
                raise self._fail(ErrorCode.BAD_FORMAT,
                                 f"ACCEPT: sample format {fmt} unknown (1 f32le, 2 s16le)")
            if inch == 0 or outch == 0:
                raise self._fail(ErrorCode.BAD_FORMAT,
                                 f"ACCEPT: {inch} input and {outch} output channels (at least 1 each)")
            if maxm < MIN_MESSAGE:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"ACCEPT: max_message {maxm} is below the minimum {MIN_MESSAGE}")
            self.set_data_layout(fmt, outch)
            self._state = _OPEN
            return Message(ACCEPT, accept=Accept(fmt, rate, inch, outch, block, latency, maxm, model, version))
        if t == DATA:
            if n < _DATA_FIXED:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"DATA truncated: {n} bytes of payload, at least {_DATA_FIXED} expected")
            seq, first, dropped = struct.unpack_from("<IQI", p)
            nbytes = n - _DATA_FIXED
            if nbytes % self._frame_bytes:
                ch = self._channels
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"DATA: {nbytes} bytes of samples is not a whole number of frames "
                                 f"({self._frame_bytes} bytes each: {ch} channel{'' if ch == 1 else 's'} "
                                 f"of {'f32le' if self._fmt == F32LE else 's16le'})")
            want_seq = self._next_seq if self._data_seen else 0
            if seq != want_seq:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"DATA: sequence number {seq}, expected {want_seq}")
            if self.side == "server" and dropped != 0:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"DATA: dropped is {dropped} in a client's DATA (must be 0)")
            expect = self._next_frame + dropped
            if (self._data_seen or self.side == "server") and first != expect:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"DATA {seq}: first frame {first}, expected {expect}")
            frames = nbytes // self._frame_bytes
            self._data_seen = True
            self._next_seq = (seq + 1) & 0xFFFFFFFF
            self._next_frame = first + frames
            return Message(DATA, data=Data(seq, first, dropped, p[_DATA_FIXED:], frames))
        if t in (END, BYE):
            if n:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"{type_name(t)} with {n} bytes of payload (it has none)")
            self._state = _ENDED if t == END else _CLOSED
            return Message(t)
        if t in (PING, PONG):
            if n != 8:
                raise self._fail(ErrorCode.BAD_MESSAGE,
                                 f"{type_name(t)} with {n} bytes of payload (8 expected: the token)")
            return Message(t, token=struct.unpack("<Q", p)[0])
        # ERROR
        if n < 2:
            raise self._fail(ErrorCode.BAD_MESSAGE,
                             f"ERROR truncated: {n} bytes of payload, at least 4 expected")
        code = struct.unpack_from("<H", p)[0]
        text, pos = self._string(p, 2, "ERROR", "text")
        if pos != n:
            raise self._fail(ErrorCode.BAD_MESSAGE, f"ERROR: {n - pos} unexpected bytes after the text")
        return Message(ERROR, code=code, text=text)


def decode_all(data: bytes, side: str = "client", max_message: int = DEFAULT_MAX_MESSAGE) -> List[Message]:
    """Every message in ``data`` (a whole recorded direction of a connection)."""
    d = Decoder(side, max_message)
    d.feed(data)
    out = list(d.messages())
    d.finish()
    return out
