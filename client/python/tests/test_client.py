# SPDX-License-Identifier: Apache-2.0
"""The client against a real convd daemon (conftest.py starts it), its results compared
with convd-run's."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

import convd
from convd import framed
from convd.errors import ErrorCode


def noise(n: int, ch: int = 1, seed: int = 1, scale: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, ch)) * scale).astype(np.float32)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def gain_of(x: np.ndarray) -> np.ndarray:
    return x * np.array([0.5, 2.0], np.float32)


@pytest.mark.parametrize("model,ch,block", [("drive", 1, 0), ("drive", 1, 7),
                                            ("vibration-denoise", 3, 0)])
def test_process_equals_convd_run(client, run_ref, model, ch, block):
    x = noise(20000 + 13, ch)
    name = "vib" if model == "vibration-denoise" else model
    y = client.process(x, model=name, block=block)
    ref = run_ref(model, x, block or 64)
    assert y.dtype == np.float32 and y.shape == ref.shape == (len(x), ch)
    assert same_bits(y, ref), f"max difference {np.abs(y - ref).max()}"


def test_process_takes_a_1d_array_for_one_channel(client, run_ref):
    x = noise(1000)
    assert same_bits(client.process(x.ravel()), run_ref("drive", x))


def test_process_empty_input(client):
    y = client.process(np.zeros((0, 1), np.float32))
    assert y.shape == (0, 1) and y.dtype == np.float32


def test_process_s16_is_the_16_bit_rounding_of_the_exact_output(client, run_ref):
    x = framed.s16_to_float(framed.s16_from_float(noise(5000)))  # what goes on the wire
    y = client.process(x, format="s16")
    want = framed.s16_to_float(framed.s16_from_float(run_ref("drive", x)))
    assert same_bits(y, want)


def test_session_reports_what_was_accepted(client):
    with client.open("vib", format="s16", block=16) as s:
        a = s.accept
        assert (a.version, a.format, a.in_channels, a.out_channels, a.block, a.model) == \
            (1, framed.S16LE, 3, 3, 16, "vib")
        assert a.max_message >= framed.MIN_MESSAGE and a.rate == 1000  # the model's rate
        assert s.ping() > 0


def test_long_stream_both_ways_at_once(client):
    """32 MB in and out through a model whose output is exact: the client sends while it
    receives, with the server holding back when its output is not read."""
    x = noise(4_000_000, 2, seed=3)
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.integers(0, len(x), 200))
    chunks = np.split(x, cuts)
    received = []
    seen_before_last = []

    def source():
        for i, c in enumerate(chunks):
            if i == len(chunks) - 1:
                seen_before_last.append(sum(len(r) for r in received))
            yield c

    for out in client.stream(source(), model="gain", block=4096):
        assert out.dtype == np.float32 and out.shape[1] == 2
        received.append(out)
    y = np.concatenate(received)
    assert same_bits(y, gain_of(x))
    assert seen_before_last[0] > 0, "no output came back while the input was being sent"


def test_send_everything_before_reading(client):
    """Session.send of a long input returns although nobody reads the output meanwhile."""
    x = noise(3_000_000, 2, seed=5)
    with client.open("gain", block=4096) as s:
        s.send(x)
        s.end()
        parts = []
        while (y := s.recv()) is not None:
            parts.append(y)
        assert s.done and s.frames_received == len(x) == s.frames_sent
    assert same_bits(np.concatenate(parts), gain_of(x))


def test_recv_with_a_timeout_returns_what_has_come(client):
    with client.open("gain", block=8) as s:
        empty = s.recv(timeout=0)
        assert empty.shape == (0, 2)
        s.send(np.ones((8, 2), np.float32))
        got = np.zeros((0, 2), np.float32)
        deadline = time.monotonic() + 10
        while len(got) < 8 and time.monotonic() < deadline:
            got = np.concatenate([got, s.recv(timeout=0.2)])
        assert got.tolist() == [[0.5, 2.0]] * 8
        assert s.first_frame == 0 or s.next_frame == 8
        s.end()
        assert s.recv() is None


def test_ping_in_the_middle_of_a_stream(client, run_ref):
    x = noise(30000)
    with client.open() as s:
        s.send(x[:10000])
        rtts = [s.ping() for _ in range(5)]
        s.send(x[10000:])
        s.end()
        y = np.concatenate(list(s))
    assert all(0 < r < 10 for r in rtts)
    assert same_bits(y, run_ref("drive", x))
    assert client.ping() > 0


def test_subscribe_follows_a_published_stream(client, run_ref):
    x = noise(50000, seed=7)
    name = "pytest-live"
    with client.open(publish=name) as pub:
        sub = client.subscribe(name)
        got, errors = [], []

        def follow():
            try:
                with sub:
                    for y in sub:
                        got.append((sub.first_frame, y))
            except BaseException as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=follow)
        t.start()
        assert sub.accept.out_channels == 1 and sub.accept.model == "drive"

        def paced():  # keeps the subscriber within 8192 frames: nothing is dropped
            for i in range(0, len(x), 4096):
                deadline = time.monotonic() + 20
                while sum(len(y) for _, y in got) < i - 8192 and time.monotonic() < deadline \
                        and not errors:
                    time.sleep(0.001)
                yield x[i:i + 4096]

        y_pub = np.concatenate(list(pub.stream(paced())))
        t.join(60)
    assert not t.is_alive() and not errors, errors
    assert same_bits(y_pub, run_ref("drive", x))
    assert got, "the subscriber received nothing"
    first = got[0][0]
    y_sub = np.concatenate([y for _, y in got])
    assert sub.frames_dropped == 0
    assert same_bits(y_sub, y_pub[first:first + len(y_sub)])
    assert first + len(y_sub) == len(y_pub), "the subscriber did not get to the end"


def test_a_subscriber_that_reads_too_slowly_is_told_what_it_lost(client):
    """The server drops frames for a subscriber that does not read (slow_subscriber =
    drop); the client counts them, and what it gets is still at the right stream index."""
    x = noise(1_500_000, 2, seed=8)
    name = "pytest-slow"
    with client.open("gain", publish=name, block=4096) as pub:
        sub = client.subscribe(name)
        y_pub = np.concatenate(list(pub.stream([x])))
    with sub:
        chunks = []
        for y in sub:
            chunks.append((sub.first_frame, y))
    assert sub.frames_dropped > 0, "a subscriber that never read lost nothing (queue_limit 64 KiB)"
    assert chunks, "the subscriber received nothing"
    for first, y in chunks:  # each piece is where the server says it is in the stream
        assert same_bits(y, y_pub[first:first + len(y)])
    assert sum(len(y) for _, y in chunks) + sub.frames_dropped <= len(y_pub)


def test_refusals_carry_the_protocol_code(client, daemon):
    cases = [
        (lambda: client.process(noise(10), model="nope"), ErrorCode.UNKNOWN_MODEL, "nope"),
        (lambda: client.process(noise(10, 2)), ErrorCode.BAD_FORMAT, "channel"),
        (lambda: client.open(rate=500), ErrorCode.BAD_FORMAT, "500"),  # 44100 is resampled
        (lambda: client.open(block=70000), ErrorCode.BAD_FORMAT, "70000"),
        (lambda: client.subscribe("nobody-publishes-this"), ErrorCode.UNKNOWN_STREAM,
         "nobody-publishes-this"),
    ]
    for call, code, text in cases:
        with pytest.raises(convd.ServerError) as e:
            call()
        assert e.value.code == code, str(e.value)
        assert not e.value.accepted and text in e.value.text, str(e.value)
        assert str(e.value).startswith(f"127.0.0.1:{daemon.ports['framed']}: the server refused: ")


def test_a_nan_is_refused_mid_stream(client):
    x = noise(5000)
    x[4000] = np.nan
    with pytest.raises(convd.ServerError) as e:
        client.process(x)
    assert e.value.code == ErrorCode.NONFINITE and e.value.accepted


def test_connection_refused_and_timeouts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(convd.ConvdConnectionError, match=f"connect 127.0.0.1:{port}"):
            convd.Client("127.0.0.1", port).process(noise(10))
    with socket.socket() as srv:  # a server that never answers HELLO
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        c = convd.Client("127.0.0.1", srv.getsockname()[1], timeout=0.3)
        with pytest.raises(convd.ConvdTimeout, match="timed out after 0.3 s waiting for ACCEPT"):
            c.open()


def fake_server(reply: bytes):
    """A server that reads the HELLO and answers `reply`, then closes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        conn, _ = srv.accept()
        with conn:
            dec = framed.Decoder("server")
            while True:
                dec.feed(conn.recv(4096))
                if dec.next() is not None:
                    break
            conn.sendall(reply)
            conn.settimeout(0.3)
            try:  # read what the client sends (closing on unread bytes would reset)
                while conn.recv(65536):
                    pass
            except socket.timeout:
                pass
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return convd.Client("127.0.0.1", srv.getsockname()[1], timeout=5)


def test_a_malformed_server_is_a_protocol_error():
    acc = framed.encode_accept(framed.Accept(1, 0, 1, 1, 0, 0, 1 << 20, "m"))
    c = fake_server(acc + framed.encode_data(3, 0, b"\0" * 4))
    with pytest.raises(convd.ProtocolError) as e:
        c.process(noise(10))
    assert e.value.code == ErrorCode.BAD_MESSAGE and "sequence number 3" in str(e.value)
    c = fake_server(acc)  # closes without END
    with pytest.raises(convd.ConvdConnectionError, match="before the end of the stream"):
        c.process(noise(10))
    c = fake_server(framed.encode_error(2, "protocol version 1 is not supported; supported versions: 2"))
    with pytest.raises(convd.ServerError) as e:
        c.open()
    assert e.value.code == ErrorCode.UNSUPPORTED_VERSION and e.value.name == "unsupported_version"


def test_line_protocol_equals_convd_run(daemon, run_ref):
    x = noise(3000, 3, seed=11)
    y = convd.line.process("127.0.0.1", daemon.ports["line"], x)
    assert same_bits(y, run_ref("vibration-denoise", x, 1))


def test_line_protocol_errors(daemon):
    text = b"0.1,0.2,0.3\n0.1,x,0.3\n1,2\n0.4,0.5,0.6\n"
    with pytest.raises(convd.LineProtocolError) as e:
        convd.line.process("127.0.0.1", daemon.ports["line"], text)
    errs = e.value.errors
    assert [(x.code, x.line, x.field) for x in errs] == [("bad_number", 2, 2), ("wrong_count", 3, 3)]
    assert e.value.line_code == "bad_number"
    assert e.value.frames.shape == (2, 3)  # the two good lines were processed
    frames, errs2 = convd.line.exchange("127.0.0.1", daemon.ports["line"], text)
    assert len(errs2) == 2 and frames.shape == (2, 3)


def test_raw_protocol_equals_convd_run(daemon, run_ref):
    x = noise(20000, seed=12)
    y = convd.raw.process("127.0.0.1", daemon.ports["raw"], x)
    assert same_bits(y, run_ref("drive", x))


def test_stream_sends_each_chunk_before_asking_for_the_next(client):
    """A source that blocks until the output of its last chunk has come back (a sensor
    that waits for an answer) still makes progress: each chunk is sent before the next is
    asked for, and output is yielded as it comes."""
    received = []

    def sensor():
        for i in range(20):
            deadline = time.monotonic() + 10
            while sum(len(r) for r in received) < 8 * i:
                assert time.monotonic() < deadline, f"chunk {i - 1}'s output never came back"
                time.sleep(0.001)
            yield np.full((8, 2), i, np.float32)

    with client.open("gain", block=8) as s:
        for out in s.stream(sensor()):
            received.append(out)
    y = np.concatenate(received)
    assert y.tolist() == [[i * 0.5, i * 2.0] for i in range(20) for _ in range(8)]


def test_a_failing_source_stops_the_stream_with_its_exception(client):
    def source():
        yield np.zeros((10, 2), np.float32)
        raise RuntimeError("sensor unplugged")

    with pytest.raises(RuntimeError, match="sensor unplugged"):
        for _ in client.stream(source(), model="gain"):
            pass


def test_leaving_a_stream_early_abandons_it(client):
    gen = client.stream((np.ones((1000, 2), np.float32) for _ in range(100000)), model="gain")
    first = next(gen)
    assert first.shape[1] == 2
    gen.close()  # the connection is closed without END: the server drops the stream
    assert client.ping() > 0
