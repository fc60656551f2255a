# SPDX-License-Identifier: Apache-2.0
"""The Python codec against the C one: convd-cat (client/convd_client.c) talks to a framed
server written with this package's encoders and server-side decoder. Every message either
side sends is checked by the other's decoder."""

from __future__ import annotations

import socket
import subprocess
import threading

import numpy as np

from convd import framed

from conftest import program


class EchoServer:
    """One framed session: ACCEPT for one channel; each DATA answered with a DATA of the
    same frames, negated under f32le (exact), unchanged under s16le; END answered with END."""

    def __init__(self) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.port = self.srv.getsockname()[1]
        self.seen = []
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.srv.accept()
            with conn:
                dec = framed.Decoder("server", framed.DEFAULT_MAX_MESSAGE)
                seq = 0
                out_frame = 0
                fmt = framed.F32LE
                while True:
                    b = conn.recv(65536)
                    if not b:
                        dec.finish()
                        return
                    dec.feed(b)
                    for m in dec.messages():
                        self.seen.append(m.type)
                        if m.type == framed.HELLO:
                            h = m.hello
                            fmt = h.format
                            self.hello = h
                            conn.sendall(framed.encode_accept(framed.Accept(
                                fmt, 48000, 1, 1, h.block, 0, framed.DEFAULT_MAX_MESSAGE,
                                h.model or "echo")))
                            dec.set_data_layout(fmt, 1)
                        elif m.type == framed.DATA:
                            d = m.data
                            samples = d.samples
                            if fmt == framed.F32LE:
                                x = framed.decode_samples(samples, fmt, 1)
                                samples = framed.encode_samples(-x, fmt)
                            conn.sendall(framed.encode_data(seq, out_frame, samples))
                            seq += 1
                            out_frame += d.n_frames
                        elif m.type == framed.PING:
                            conn.sendall(framed.encode_pong(m.token))
                        elif m.type == framed.END:
                            conn.sendall(framed.encode_end())
                        elif m.type == framed.BYE:
                            return
        except BaseException as e:
            self.error = e
        finally:
            self.srv.close()


def run_cat(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(program("convd-cat")), "-p", str(port), *args],
                          capture_output=True, text=True, timeout=60)


def test_convd_cat_f32_through_a_python_server(tmp_path):
    x = (np.random.default_rng(21).standard_normal(100_003) * 0.5).astype("<f4")
    x.tofile(tmp_path / "in.f32")
    srv = EchoServer()
    r = run_cat(srv.port, "-m", "echo", "--block", "333", str(tmp_path / "in.f32"),
                str(tmp_path / "out.f32"))
    srv.thread.join(10)
    assert srv.error is None, repr(srv.error)
    assert r.returncode == 0, r.stderr
    assert srv.hello.model == "echo" and srv.hello.block == 333 and srv.hello.format == framed.F32LE
    assert srv.seen[0] == framed.HELLO and framed.END in srv.seen
    y = np.fromfile(tmp_path / "out.f32", dtype="<f4")
    assert np.array_equal(y.view(np.uint32), (-x).view(np.uint32))
    assert "model 'echo'" in r.stderr


def test_convd_cat_s16_through_a_python_server(tmp_path):
    x = np.random.default_rng(22).integers(-32768, 32768, 50_000).astype("<i2")
    x.tofile(tmp_path / "in.s16")
    srv = EchoServer()
    r = run_cat(srv.port, "--block", "64", str(tmp_path / "in.s16"), str(tmp_path / "out.s16"))
    srv.thread.join(10)
    assert srv.error is None, repr(srv.error)
    assert r.returncode == 0, r.stderr
    assert srv.hello.format == framed.S16LE
    assert np.array_equal(np.fromfile(tmp_path / "out.s16", dtype="<i2"), x)
