# SPDX-License-Identifier: Apache-2.0
"""The codec without a server: docs/PROTOCOL.md's bytes, the decoder's checks, samples."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import convd
from convd import framed
from convd.errors import ErrorCode, ProtocolError


def hexbytes(s: str) -> bytes:
    return bytes.fromhex(s.replace("\n", " "))


# docs/PROTOCOL.md, "Example exchange"
DOC_HELLO = hexbytes("16 00 00 00 01 01 00 00 01 80 bb 00 00 01 00 40 00 00 00 03 00 61 6d 70 00 00")
DOC_ACCEPT = hexbytes("1d 00 00 00 02 01 00 01 80 bb 00 00 01 00 01 00 40 00 00 00 02 00 00 00"
                      " 00 00 10 00 03 00 61 6d 70")
DOC_CLIENT_DATA = hexbytes("19 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
                           " 00 00 00 3f 00 00 80 be")
DOC_SERVER_DATA = hexbytes("19 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
                           " 00 00 00 3e 00 00 80 3f")
DOC_END = hexbytes("01 00 00 00 04")
DOC_PING = hexbytes("09 00 00 00 05 88 77 66 55 44 33 22 11")
DOC_ERROR = hexbytes("11 00 00 00 07 03 00 0c 00 6e 6f 20 6d 6f 64 65 6c 20 27 78 27")
DOC_BYE = hexbytes("01 00 00 00 08")


def test_encoders_give_the_documented_bytes():
    hello = framed.Hello(role=framed.PROCESS, format=framed.F32LE, rate=48000, channels=1,
                         block=64, model="amp", stream="")
    assert framed.encode_hello(hello) == DOC_HELLO
    acc = framed.Accept(format=1, rate=48000, in_channels=1, out_channels=1, block=64,
                        latency=2, max_message=1048576, model="amp")
    assert framed.encode_accept(acc) == DOC_ACCEPT
    samples = framed.encode_samples(np.array([[0.5], [-0.25]], np.float32), framed.F32LE)
    assert framed.encode_data(0, 0, samples) == DOC_CLIENT_DATA
    assert framed.encode_end() == DOC_END
    assert framed.encode_ping(0x1122334455667788) == DOC_PING
    assert framed.encode_error(3, "no model 'x'") == DOC_ERROR
    assert framed.encode_bye() == DOC_BYE


def test_decoder_reads_the_documented_server_side_in_any_split():
    stream = DOC_ACCEPT + DOC_SERVER_DATA + DOC_PING + DOC_END
    whole = framed.decode_all(stream)
    assert [m.type for m in whole] == [framed.ACCEPT, framed.DATA, framed.PING, framed.END]
    a = whole[0].accept
    assert (a.version, a.format, a.rate, a.in_channels, a.out_channels, a.block, a.latency,
            a.max_message, a.model) == (1, 1, 48000, 1, 1, 64, 2, 1048576, "amp")
    d = whole[1].data
    assert (d.seq, d.first_frame, d.dropped, d.n_frames) == (0, 0, 0, 2)
    assert framed.decode_samples(d.samples, 1, 1).ravel().tolist() == [0.125, 1.0]
    assert whole[2].token == 0x1122334455667788
    for cut in range(1, len(stream)):
        for cut2 in (cut, min(len(stream), cut + 7)):
            dec = framed.Decoder("client", framed.DEFAULT_MAX_MESSAGE)
            got = []
            for part in (stream[:cut], stream[cut:cut2], stream[cut2:]):
                dec.feed(part)
                got += list(dec.messages())
            dec.finish()
            assert got == whole, f"split at {cut}, {cut2}"
    # byte by byte
    dec = framed.Decoder("client", framed.DEFAULT_MAX_MESSAGE)
    got = []
    for i in range(len(stream)):
        dec.feed(stream[i:i + 1])
        got += list(dec.messages())
    assert got == whole


def test_server_side_decoder_reads_the_documented_client_side():
    msgs = framed.decode_all(DOC_HELLO + DOC_END + DOC_BYE, side="server")
    assert msgs[0].hello == framed.Hello(0, 1, 48000, 1, 64, "amp", "", 1)
    assert [m.type for m in msgs[1:]] == [framed.END, framed.BYE]
    # a server sets the DATA layout once it accepts: before that, DATA is refused
    dec = framed.Decoder("server")
    dec.feed(DOC_HELLO)
    assert dec.next().type == framed.HELLO
    dec.set_data_layout(framed.F32LE, 1)
    dec.feed(DOC_CLIENT_DATA + DOC_END)
    assert [m.type for m in dec.messages()] == [framed.DATA, framed.END]


def msg(t: int, payload: bytes = b"") -> bytes:
    return struct.pack("<IB", len(payload) + 1, t) + payload


def accept(fmt=1, inch=1, outch=1, maxm=1048576, version=1, model=b"m") -> bytes:
    return msg(framed.ACCEPT, struct.pack("<HBIHHIII", version, fmt, 0, inch, outch, 0, 0, maxm)
               + struct.pack("<H", len(model)) + model)


def data(seq=0, first=0, dropped=0, samples=b"\0\0\0\0") -> bytes:
    return msg(framed.DATA, struct.pack("<IQI", seq, first, dropped) + samples)


def s(b: bytes) -> bytes:
    return struct.pack("<H", len(b)) + b


def hello(version=1, role=0, fmt=1, model=b"", stream=b"", extra=b"") -> bytes:
    return msg(framed.HELLO, struct.pack("<HBBIHI", version, role, fmt, 0, 0, 0) + s(model)
               + s(stream) + extra)


CLIENT_SIDE_BAD = [
    ("length 0", b"\0\0\0\0", 1, "length 0"),
    ("too large", struct.pack("<I", 8193), 6, "larger than the limit"),
    ("unknown type", msg(9), 1, "unknown message type 9"),
    ("HELLO to a client", hello(), 1, "HELLO from a server"),
    ("DATA before ACCEPT", data(), 1, "before ACCEPT"),
    ("ACCEPT twice", accept() + accept(), 1, "ACCEPT after ACCEPT"),
    ("ACCEPT version 2", accept(version=2), 2, "version 2"),
    ("ACCEPT format 3", accept(fmt=3), 4, "sample format 3"),
    ("ACCEPT 0 channels", accept(outch=0), 4, "channels"),
    ("ACCEPT max_message 1023", accept(maxm=1023), 1, "below the minimum"),
    ("ACCEPT truncated", msg(framed.ACCEPT, b"\1\0\1"), 1, "truncated"),
    ("ACCEPT extra byte", msg(framed.ACCEPT, accept()[5:] + b"x"), 1, "unexpected bytes"),
    ("model not UTF-8", accept(model=b"\xc0\xaf"), 1, "not UTF-8"),
    ("model with a surrogate", accept(model=b"\xed\xa0\x80"), 1, "not UTF-8"),
    ("model with NUL", accept(model=b"a\0b"), 1, "not UTF-8"),
    ("model over 1024 bytes", accept(model=b"m" * 1025), 1, "at most 1024"),
    ("DATA not whole frames", accept(outch=2) + data(samples=b"\0" * 12), 1, "whole number"),
    ("DATA seq 1 first", accept() + data(seq=1), 1, "sequence number 1, expected 0"),
    ("DATA seq skipped", accept() + data() + data(seq=2, first=1), 1, "expected 1"),
    ("DATA first_frame wrong", accept() + data() + data(seq=1, first=5), 1, "first frame 5, expected 1"),
    ("DATA truncated", accept() + msg(framed.DATA, b"\0" * 15), 1, "truncated"),
    ("DATA after END", accept() + msg(framed.END) + data(), 1, "DATA after END"),
    ("END after END", accept() + msg(framed.END) + msg(framed.END), 1, "END after END"),
    ("END with payload", accept() + msg(framed.END, b"x"), 1, "payload"),
    ("PING of 7 bytes", accept() + msg(framed.PING, b"\0" * 7), 1, "8 expected"),
    ("anything after BYE", msg(framed.BYE) + accept(), 1, "after BYE"),
    ("PING before ACCEPT", msg(framed.PING, b"\0" * 8), 1, "before ACCEPT"),
    ("ERROR truncated", msg(framed.ERROR, b"\1"), 1, "truncated"),
    ("ERROR text too long for the payload", msg(framed.ERROR, b"\1\0\5\0ab"), 1, "only 2 bytes left"),
]


@pytest.mark.parametrize("name,stream,code,text", CLIENT_SIDE_BAD,
                         ids=[c[0] for c in CLIENT_SIDE_BAD])
def test_client_side_decoder_refuses(name, stream, code, text):
    dec = framed.Decoder("client")
    dec.feed(stream)
    with pytest.raises(ProtocolError) as e:
        list(dec.messages())
    assert e.value.code == code, str(e.value)
    assert text in str(e.value)
    with pytest.raises(ProtocolError):  # and it stays failed
        dec.next()


def test_subscriber_data_may_skip_frames_when_dropped_says_so():
    stream = accept() + data(first=100) + data(seq=1, first=105, dropped=4) + \
        data(seq=2, first=106)
    msgs = framed.decode_all(stream)
    assert [m.data.first_frame for m in msgs[1:]] == [100, 105, 106]


SERVER_SIDE_BAD = [
    ("ACCEPT to a server", accept(), 1, "ACCEPT from a client"),
    ("DATA before HELLO", data(), 1, "before HELLO"),
    ("HELLO version 2", hello(version=2), 2, "supported versions: 1"),
    ("HELLO role 2", hello(role=2), 1, "role 2"),
    ("HELLO format 0", hello(fmt=0), 4, "sample format 0"),
    ("subscribe without a stream", hello(role=1), 1, "without a stream name"),
    ("HELLO extra bytes", hello(extra=b"x"), 1, "unexpected bytes"),
    ("HELLO truncated", msg(framed.HELLO, b"\1\0\0"), 1, "truncated"),
    ("DATA from a subscriber", hello(role=1, stream=b"x") + data(), 1, "from a subscriber"),
]


@pytest.mark.parametrize("name,stream,code,text", SERVER_SIDE_BAD, ids=[c[0] for c in SERVER_SIDE_BAD])
def test_server_side_decoder_refuses(name, stream, code, text):
    dec = framed.Decoder("server")
    dec.feed(stream)
    with pytest.raises(ProtocolError) as e:
        list(dec.messages())
    assert e.value.code == code, str(e.value)
    assert text in str(e.value)


def test_server_side_decoder_refuses_dropped_and_wrong_first_frame_from_a_client():
    for bad, text in ((data(dropped=1), "dropped is 1"), (data(first=3), "first frame 3")):
        dec = framed.Decoder("server")
        dec.feed(hello())
        dec.next()
        dec.set_data_layout(framed.F32LE, 1)
        dec.feed(bad)
        with pytest.raises(ProtocolError, match=text):
            dec.next()


def test_a_connection_ending_inside_a_message_is_reported():
    dec = framed.Decoder("client")
    dec.feed(DOC_ACCEPT[:10])
    assert dec.next() is None
    with pytest.raises(ProtocolError, match=r"inside a ACCEPT message \(10 of 33 bytes\)"):
        dec.finish()
    dec = framed.Decoder("client")
    dec.feed(b"\1\0")
    with pytest.raises(ProtocolError, match="length field"):
        dec.finish()


def test_s16_conversions_follow_the_documented_rule():
    assert framed.s16_to_float(np.array([-32768, 32767, 0, 1], np.int16)).tolist() == \
        [-1.0, 0.999969482421875, 0.0, 1 / 32768]
    f = np.float32
    cases = {0.5 / 32768: 1, 1.5 / 32768: 2, 2.5 / 32768: 3, -0.5 / 32768: -1,
             -1.5 / 32768: -2, 0.49999997 / 32768: 0, 2.0: 32767, -2.0: -32768,
             float("inf"): 32767, float("-inf"): -32768, float("nan"): 0, -0.0: 0,
             32767.5 / 32768: 32767, -32768.5 / 32768: -32768}
    for y, want in cases.items():
        got = int(framed.s16_from_float(np.array([y], f))[0])
        assert got == want, f"{y!r} -> {got}, want {want}"
    # just below a half: float32 arithmetic would round it up
    y = np.nextafter(f(0.5), f(0)) / f(32768)
    assert int(framed.s16_from_float(np.array([y]))[0]) == 0
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert np.array_equal(framed.s16_from_float(framed.s16_to_float(every)), every)
    # the wire bytes
    assert framed.encode_samples(np.array([[1.0, -1.0]], f), framed.S16LE) == b"\xff\x7f\x00\x80"
    assert framed.decode_samples(b"\x00\x80\xff\x7f", framed.S16LE, 2).tolist() == \
        [[-1.0, 0.999969482421875]]


def test_f32_samples_pass_bit_for_bit():
    bits = np.array([0x7FC00001, 0xFF800000, 0x00000001, 0x80000000, 0x3F800000], np.uint32)
    x = bits.view(np.float32).reshape(-1, 1)
    b = framed.encode_samples(x, framed.F32LE)
    assert b == bits.astype("<u4").tobytes()
    assert np.array_equal(framed.decode_samples(b, framed.F32LE, 1).view(np.uint32), x.view(np.uint32))


def test_encoders_refuse_bad_strings():
    with pytest.raises(ValueError, match="at most 1024"):
        framed.encode_hello(framed.Hello(model="m" * 1025))
    with pytest.raises(ValueError, match="NUL"):
        framed.encode_hello(framed.Hello(stream="a\0"))
    long = framed.encode_error(10, "é" * 1000)  # cut at a character boundary
    (msg_,) = framed.decode_all(long)
    assert msg_.code == 10 and len(msg_.text.encode()) <= 1024


def test_line_format_and_parse():
    x = np.array([[0.1, -1.4e-45], [1234567, float("inf")]], np.float32)
    assert convd.line.format_frames(x) == b"0.100000001,-1.40129846e-45\n1234567,inf\n"
    rng = np.random.default_rng(5)
    y = (rng.standard_normal((1000, 3)) * np.exp(rng.uniform(-40, 40, (1000, 3)))).astype(np.float32)
    back, errs = convd.line.parse_output(convd.line.format_frames(y))
    assert errs == [] and np.array_equal(back.view(np.uint32), y.view(np.uint32))
    out = (b"0.5,1\n!ERR bad_number line 3 field 2: \"1.2x\" is not a number\n"
           b"!ERR line_too_long line 9: longer than 65536 bytes\n!ERR shutting_down the server stops\n2,3\n")
    frames, errs = convd.line.parse_output(out)
    assert frames.tolist() == [[0.5, 1.0], [2.0, 3.0]]
    assert [(e.code, e.line, e.field) for e in errs] == [
        ("bad_number", 3, 2), ("line_too_long", 9, None), ("shutting_down", None, None)]
    assert str(errs[0]) == '!ERR bad_number line 3 field 2: "1.2x" is not a number'


def test_errors_carry_codes():
    e = convd.ServerError("h:1", 3, "unknown model 'x'", False)
    assert e.code == convd.ErrorCode.UNKNOWN_MODEL and e.code == 3 and e.name == "unknown_model"
    assert str(e) == "h:1: the server refused: unknown_model (3): unknown model 'x'"
    e = convd.ServerError("h:1", 99, "", True)
    assert e.code == 99 and e.name == "unknown" and "server error: unknown (99)" in str(e)
    assert isinstance(convd.ConvdConnectionError("x"), ConnectionError)
    assert isinstance(convd.ConvdTimeout("x"), TimeoutError)
    assert [c.name.lower() for c in ErrorCode] == [
        "bad_message", "unsupported_version", "unknown_model", "bad_format", "nonfinite",
        "too_large", "timeout", "busy", "unknown_stream", "internal", "shutting_down"]
