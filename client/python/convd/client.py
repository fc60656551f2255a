# SPDX-License-Identifier: Apache-2.0
"""A client of convd's framed protocol: NumPy arrays through a server's models.

    import convd
    c = convd.Client("127.0.0.1", 7401)
    y = c.process(x, model="drive")          # x: (frames, channels) -> y: (frames, channels)
    for out in c.stream(chunks):              # long inputs: output while input is still sent
        ...
    for out in c.subscribe("live"):           # the output of a stream another client publishes
        ...

Every method that talks to the server sends and receives at the same time: while it waits to
write, it reads what the server sends (and answers its PINGs), so a long input never
deadlocks against a server that stops reading until its output is read.
"""

from __future__ import annotations

import os
import queue
import selectors
import socket
import threading
import time
from typing import Iterable, Iterator, List, Optional, Set, Tuple, Union

import numpy as np

from . import framed
from .errors import (
    ConvdConnectionError,
    ConvdError,
    ConvdTimeout,
    ProtocolError,
    ServerError,
)
from .framed import Accept

__all__ = ["Client", "Session", "Subscription", "Accept", "DEFAULT_PORT"]

DEFAULT_PORT = 7401
"""The framed listener's port in convd's shipped configuration."""

ArrayLike = Union[np.ndarray, "list[float]", "list[list[float]]"]

_READ_CHUNK = 1 << 18
_HIGH_WATER = 1 << 20  # bytes queued for sending before the client stops encoding more input


class Session:
    """One framed connection and its stream: HELLO, ACCEPT, then frames both ways.

    Made by :meth:`Client.open` (process) or :meth:`Client.subscribe`; use it as a context
    manager, or call :meth:`close`. ``accept`` holds what the server granted (channels, rate,
    latency, block, max_message, model). Not thread-safe: one thread at a time.
    """

    def __init__(self, sock: socket.socket, peer: str, timeout: Optional[float],
                 hello: framed.Hello) -> None:
        self.peer = peer
        self.timeout = timeout
        self.role = hello.role
        self.format = hello.format
        self.accept: Optional[Accept] = None
        self.frames_sent = 0
        self.frames_received = 0
        """frames returned by recv() and the iterators so far"""
        self.frames_dropped = 0
        """subscriber: frames the server skipped because this client read too slowly"""
        self.first_frame = 0
        """stream index of the first frame of the array recv() (or an iterator) returned last"""
        self.next_frame = 0
        """stream index just past the last frame returned"""
        self._sock: Optional[socket.socket] = sock
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ)
        self._events = selectors.EVENT_READ
        self._out = bytearray()
        self._out_off = 0
        self._dec = framed.Decoder("client", framed.RECV_MIN_MESSAGE)
        self._queue: List[Tuple[int, int, bytes]] = []  # (first_frame, dropped, samples)
        self._queue_head = 0
        self._pending: Optional[np.ndarray] = None  # input frames not yet encoded
        self._pending_off = 0
        self._seq = 0
        self._send_max = 0
        self._block = hello.block
        self._end_queued = False
        self._ended = False  # the server's END came
        self._eof = False
        self._failed: Optional[BaseException] = None
        self._pongs: Set[int] = set()
        self._queue_out(framed.encode_hello(hello))
        self._wait(lambda: self.accept is not None, "waiting for ACCEPT")

    # ---- public -------------------------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """Channels of the frames to send."""
        assert self.accept is not None
        return self.accept.in_channels

    @property
    def out_channels(self) -> int:
        """Channels of the frames received."""
        assert self.accept is not None
        return self.accept.out_channels

    @property
    def done(self) -> bool:
        """True once the server's END has come and every frame before it was returned."""
        return self._ended and self._queue_head == len(self._queue)

    def send(self, frames: ArrayLike) -> None:
        """Sends frames (shape (n, in_channels); a 1-D array when in_channels is 1) in DATA
        messages; returns when all are handed to the kernel. Output arriving meanwhile is
        kept for :meth:`recv`."""
        self._check_open("send")
        self._set_pending(frames)
        while True:
            self._fill()
            if self._pending is None and self._out_off == len(self._out):
                return
            self._pump_wait("sending to the server")

    def end(self) -> None:
        """No more input: sends END (the server then sends the rest of the output and its
        END). Waits until it is handed to the kernel."""
        self._check_open("end")
        self._queue_end()
        while self._out_off < len(self._out):
            self._pump_wait("sending to the server")

    def recv(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """The frames received so far, as float32 of shape (n, out_channels), contiguous in
        the stream (``first_frame`` is then the index of the first one).

        Waits for at least one frame: up to ``timeout`` seconds (0: only what has arrived;
        then the array may have no rows), or with None until frames come or the stream ends
        (the server silent for the session's timeout raises :class:`ConvdTimeout`). Returns
        None once the stream is over and everything was returned.
        """
        self._raise_failed()
        if self.role == framed.PROCESS and self.accept is None:
            raise ConvdError(f"{self.peer}: not accepted")
        if timeout is None:
            self._wait(lambda: self._queue_head < len(self._queue) or self._ended,
                       "waiting for output")
        else:
            end = time.monotonic() + timeout
            while self._queue_head == len(self._queue) and not self._ended:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._pump(left)
            if self._queue_head == len(self._queue) and not self._ended:
                self._pump(0)
        if self._queue_head == len(self._queue):
            if self._ended:
                return None
            return np.zeros((0, self.out_channels), dtype=np.float32)
        return self._take()

    def stream(self, chunks: Iterable[ArrayLike] = (), end: bool = True) -> Iterator[np.ndarray]:
        """Sends every chunk of ``chunks`` (each like :meth:`send` takes) and yields the
        output as it arrives, float32 arrays of shape (n, out_channels), while the input is
        still being sent. With ``end`` (the default) it sends END after the last chunk and
        ends after the server's END, when the whole output (the model's tail included) has
        been yielded. After :meth:`end`, ``stream()`` yields the rest of the output.

        A list or tuple is sent as it is; any other iterable (a generator reading a sensor,
        a file being written) is read in a helper thread, so that while it waits for its
        next chunk the output of the last ones is still received and yielded. Waiting for
        such a source has no timeout; waiting for the server has the session's.
        """
        self._raise_failed()
        if self.role != framed.PROCESS:
            raise ConvdError(f"{self.peer}: a subscription sends nothing (stream)")
        if self._end_queued:
            if isinstance(chunks, (list, tuple)) and not chunks:
                yield from self
                return
            raise ConvdError(f"{self.peer}: stream after END")
        src: _Source = _ListSource(chunks) if isinstance(chunks, (list, tuple)) \
            else _ThreadSource(chunks)
        if isinstance(src, _ThreadSource):
            self._sel.register(src.wake_r, selectors.EVENT_READ, "wake")
        try:
            exhausted = False
            while True:
                self._fill()
                if self._queue_head < len(self._queue):
                    yield self._take()
                    continue
                if self._ended:
                    return
                if not exhausted and self._pending is None and \
                        len(self._out) - self._out_off < _HIGH_WATER:
                    got, chunk = src.get()
                    if got == _CHUNK:
                        self._set_pending(chunk)
                        continue
                    if got == _DONE:
                        exhausted = True
                        if end:
                            self._queue_end()
                        continue
                    # nothing yet from a source that waits: send, receive, and wait for
                    # either without a timeout when nothing is owed to the server
                    if self._out_off == len(self._out):
                        self._pump(None)
                        continue
                if exhausted and not end and self._pending is None and \
                        self._out_off == len(self._out):
                    return
                self._pump_wait("waiting for the server")
        finally:
            if isinstance(src, _ThreadSource):
                if self._sock is not None:
                    self._sel.unregister(src.wake_r)
                src.stop()

    def __iter__(self) -> Iterator[np.ndarray]:
        """The output as it arrives (float32 arrays of shape (n, out_channels), never
        empty), until the stream is over."""
        while True:
            x = self.recv()
            if x is None:
                return
            if len(x):
                yield x

    def ping(self) -> float:
        """Sends PING and waits for its PONG; returns the round trip in seconds. Frames
        arriving meanwhile are kept."""
        self._raise_failed()
        token = int.from_bytes(os.urandom(8), "little")
        t0 = time.monotonic()
        self._queue_out(framed.encode_ping(token))
        self._wait(lambda: token in self._pongs, "waiting for PONG")
        self._pongs.discard(token)
        return time.monotonic() - t0

    def close(self) -> None:
        """Sends BYE (when the socket takes it at once) and closes. Closing a process
        session before the server's END abandons the stream."""
        if self._sock is None:
            return
        if self._failed is None and not self._eof:
            try:
                self._sock.send(framed.encode_bye(), socket.MSG_DONTWAIT | _NOSIGNAL)
            except OSError:
                pass
        try:
            self._sel.close()
        finally:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._sock is not None:
                self._sel.close()
                self._sock.close()
        except Exception:
            pass

    # ---- input ----------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        self._raise_failed()
        if self.role != framed.PROCESS:
            raise ConvdError(f"{self.peer}: a subscription sends nothing ({what})")
        if self._end_queued:
            raise ConvdError(f"{self.peer}: {what} after END")

    def _set_pending(self, frames: ArrayLike) -> None:
        a = np.asarray(frames, dtype=np.float32)
        ch = self.in_channels
        if a.ndim == 1 and ch == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[1] != ch:
            raise ValueError(f"frames of shape {a.shape}: the session takes (frames, {ch})"
                             + (" or (frames,)" if ch == 1 else ""))
        if self._send_max == 0:
            fb = framed.sample_bytes(self.format) * ch
            self._send_max = max(1, (self.accept.max_message - 17) // fb)
            if self._block:
                self._send_max = min(self._send_max, self._block)
        self._pending = np.ascontiguousarray(a)
        self._pending_off = 0
        if len(a) == 0:
            self._pending = None

    def _fill(self) -> None:
        """Encodes pending input into DATA messages, up to the high-water mark."""
        a = self._pending
        while a is not None and len(self._out) - self._out_off < _HIGH_WATER:
            n = min(self._send_max, len(a) - self._pending_off)
            part = a[self._pending_off: self._pending_off + n]
            self._queue_out(framed.encode_data(self._seq, self.frames_sent,
                                               framed.encode_samples(part, self.format)))
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            self.frames_sent += n
            self._pending_off += n
            if self._pending_off == len(a):
                self._pending = a = None

    def _queue_end(self) -> None:
        if not self._end_queued:
            self._fill_all()
            self._queue_out(framed.encode_end())
            self._end_queued = True

    def _fill_all(self) -> None:
        while self._pending is not None:
            self._fill()
            if self._pending is not None:
                self._pump_wait("sending to the server")

    def _queue_out(self, b: bytes) -> None:
        if self._out_off and self._out_off * 2 >= len(self._out):
            del self._out[: self._out_off]
            self._out_off = 0
        self._out += b

    # ---- output ---------------------------------------------------------------------------

    def _take(self) -> np.ndarray:
        """Queued frames that follow each other in the stream, as one array."""
        parts: List[bytes] = []
        first = None
        nxt = 0
        q = self._queue
        while self._queue_head < len(q):
            f, dropped, samples = q[self._queue_head]
            nframes = len(samples) // (framed.sample_bytes(self.format) * self.out_channels)
            if first is None:
                first = f
            elif f != nxt:
                break
            parts.append(samples)
            nxt = f + nframes
            self._queue_head += 1
        if self._queue_head == len(q):
            self._queue.clear()
            self._queue_head = 0
        out = framed.decode_samples(b"".join(parts), self.format, self.out_channels)
        self.first_frame = first
        self.next_frame = nxt
        self.frames_received += len(out)
        return out

    # ---- I/O ------------------------------------------------------------------------------

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._sock is None:
            raise ConvdError(f"{self.peer}: the session is closed")

    def _fail(self, e: BaseException) -> BaseException:
        if self._failed is None:
            self._failed = e
        return self._failed

    def _wait(self, cond, what: str) -> None:
        while not cond():
            self._pump_wait(what)

    def _pump_wait(self, what: str) -> None:
        """One wait for the socket, bounded by the session's timeout."""
        if not self._pump(self.timeout):
            raise self._fail(ConvdTimeout(
                f"{self.peer}: timed out after {self.timeout:g} s {what}"))

    def _pump(self, timeout: Optional[float]) -> bool:
        """Waits up to timeout (None: for ever) for the socket, then writes and reads what it
        can. False if the time ran out."""
        self._raise_failed()
        events = 0 if self._eof else selectors.EVENT_READ
        if self._out_off < len(self._out):
            events |= selectors.EVENT_WRITE
        if events == 0:
            raise self._fail(ConvdConnectionError(f"{self.peer}: the connection is closed"))
        if events != self._events:
            self._sel.modify(self._sock, events, None)
            self._events = events
        ready = self._sel.select(timeout)
        if not ready:
            return False
        for key, mask in ready:
            if key.data == "wake":
                _drain(key.fileobj)
                continue
            if mask & selectors.EVENT_WRITE:
                self._flush()
            if mask & selectors.EVENT_READ:
                self._read()
        return True

    def _flush(self) -> None:
        assert self._sock is not None
        view = memoryview(self._out)
        try:
            while self._out_off < len(self._out):
                try:
                    n = self._sock.send(view[self._out_off:], _NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    break
                self._out_off += n
        except OSError as e:
            # the server may have said why in what it sent before closing
            view.release()
            self._read_rest()
            raise self._fail(ConvdConnectionError(f"send to {self.peer}: {e.strerror or e}"))
        finally:
            view.release()
        if self._out_off == len(self._out):
            self._out.clear()
            self._out_off = 0

    def _read_rest(self) -> None:
        try:
            self._read()
        except BaseException:
            pass

    def _read(self) -> None:
        assert self._sock is not None
        for _ in range(16):
            try:
                b = self._sock.recv(_READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._eof = True
                raise self._fail(ConvdConnectionError(f"receive from {self.peer}: {e.strerror or e}"))
            if not b:
                self._eof = True
                try:
                    self._dec.finish()
                except ProtocolError as e:
                    raise self._fail(ProtocolError(f"{self.peer}: {e}", e.code))
                if not self._ended:
                    raise self._fail(ConvdConnectionError(
                        f"{self.peer}: the server closed the connection "
                        + ("before the end of the stream" if self.accept else "without answering HELLO")))
                return
            self._dec.feed(b)
            try:
                for m in self._dec.messages():
                    self._handle(m)
            except ProtocolError as e:
                self._answer_protocol_error(e)
                raise self._fail(ProtocolError(
                    f"{self.peer}: protocol error in what the server sent: {e}", e.code))
            if len(b) < _READ_CHUNK:
                return

    def _answer_protocol_error(self, e: ProtocolError) -> None:
        try:
            self._sock.send(framed.encode_error(int(e.code or 1), str(e)) + framed.encode_bye(),
                            socket.MSG_DONTWAIT | _NOSIGNAL)
        except OSError:
            pass

    def _handle(self, m: framed.Message) -> None:
        t = m.type
        if t == framed.DATA:
            d = m.data
            self._queue.append((d.first_frame, d.dropped, d.samples))
            self.frames_dropped += d.dropped
        elif t == framed.ACCEPT:
            a = m.accept
            self.accept = a
            self._dec.set_max_message(min(max(a.max_message, framed.RECV_MIN_MESSAGE),
                                          framed.MAX_MESSAGE_LIMIT))
        elif t == framed.END:
            self._ended = True
        elif t == framed.PING:
            self._queue_out(framed.encode_pong(m.token))
        elif t == framed.PONG:
            self._pongs.add(m.token)
        elif t == framed.ERROR:
            raise self._fail(ServerError(self.peer, m.code, m.text, self.accept is not None))
        elif t == framed.BYE:
            if not self._ended:
                raise self._fail(ConvdConnectionError(
                    f"{self.peer}: the server said BYE "
                    + ("before the end of the stream" if self.accept else "without answering HELLO")))


_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)

_CHUNK, _DONE, _WAIT = 0, 1, 2


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


class _Source:
    def get(self) -> "tuple[int, object]":
        """(_CHUNK, frames), (_DONE, None), or (_WAIT, None) when nothing is ready yet."""
        raise NotImplementedError


class _ListSource(_Source):
    """Chunks already in memory: never waits."""

    def __init__(self, chunks) -> None:
        self._it = iter(chunks)

    def get(self):
        for c in self._it:
            return _CHUNK, c
        return _DONE, None


class _ThreadSource(_Source):
    """An iterable read in a helper thread into a small queue (a few chunks: back-pressure
    on the source); each chunk put wakes the session's selector through a socket pair. An
    exception from the iterable is raised from get()."""

    def __init__(self, chunks) -> None:
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._q: "queue.Queue" = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks,), daemon=True,
                                        name="convd-stream-source")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
            except queue.Full:
                continue
            try:
                self._wake_w.send(b"w")
            except OSError:  # full (the reader is behind) or closed: it looks anyway
                pass
            return True
        return False

    def _run(self, chunks) -> None:
        try:
            for c in chunks:
                if not self._put((_CHUNK, np.asarray(c, dtype=np.float32))):
                    return
            self._put((_DONE, None))
        except BaseException as e:  # handed to the session's thread
            self._put(("error", e))

    def get(self):
        try:
            kind, v = self._q.get_nowait()
        except queue.Empty:
            return _WAIT, None
        if kind == "error":
            raise v
        return kind, v

    def stop(self) -> None:
        """Stops taking chunks (a source blocked in its iterator finishes that call
        first, in its own thread)."""
        self._stop.set()
        self.wake_r.close()
        self._wake_w.close()


class Subscription(Session):
    """A subscription to a published stream (:meth:`Client.subscribe`): iterate over it for
    the stream's output frames, float32 arrays of shape (n, channels), until the publisher's
    stream ends. ``frames_dropped`` counts frames the server skipped because this client read
    too slowly; ``first_frame`` is the stream index of the first frame of the array returned
    last (a subscriber joins wherever the stream is), ``next_frame`` the index after it. Once
    accepted it waits for frames for ever (set ``timeout`` to bound each wait)."""


class Client:
    """A convd server's framed listener, at ``host``:``port``.

    ``timeout`` (seconds; None: none) bounds the connection and every wait for the server.
    Each call opens its own connection (a framed connection carries one stream); the object
    holds no connection itself and may be shared.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 timeout: Optional[float] = 10.0) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = timeout

    @property
    def peer(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}"

    def _connect(self) -> socket.socket:
        try:
            s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout as e:
            raise ConvdTimeout(f"connect {self.peer}: timed out after {self.timeout:g} s") from e
        except OSError as e:
            raise ConvdConnectionError(f"connect {self.peer}: {e.strerror or e}") from e
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return s

    def _session(self, cls, hello: framed.Hello) -> Session:
        s = self._connect()
        try:
            return cls(s, self.peer, self.timeout, hello)
        except BaseException:
            s.close()
            raise

    def open(self, model: Optional[str] = None, *, format: Union[str, int] = "f32",
             rate: int = 0, channels: int = 0, block: int = 0,
             publish: Optional[str] = None) -> Session:
        """Opens a process session: HELLO, then waits for ACCEPT.

        ``model``: the model (None: the listener's default); ``format``: the samples on the
        wire, "f32" (exact) or "s16" (16-bit, halves the bytes); ``rate``: the rate of the
        frames, checked against the model's (0: unspecified); ``channels``: of the frames
        sent (0: the model's); ``block``: frames per DATA and per model call (0: the
        listener's); ``publish``: publish the output under this stream name.
        Raises :class:`ServerError` (``code``: unknown_model, bad_format, busy, ...) when the
        server refuses.
        """
        hello = framed.Hello(framed.PROCESS, framed.format_of(format), int(rate),
                             int(channels), int(block), model or "", publish or "")
        return self._session(Session, hello)

    def process(self, frames: ArrayLike, model: Optional[str] = None, **kw) -> np.ndarray:
        """Runs frames of shape (n, channels) (or (n,) for one channel) through a model and
        returns the whole output, float32 of shape (m, out_channels): the same as
        ``convd-run`` computes offline, the model's tail included. Options as :meth:`open`.
        """
        a = np.asarray(frames, dtype=np.float32)
        ch = 1 if a.ndim == 1 else (a.shape[1] if a.ndim == 2 else 0)
        if ch == 0:
            raise ValueError(f"frames of shape {a.shape}: (frames, channels) or (frames,)")
        kw.setdefault("channels", ch)
        with self.open(model, **kw) as s:
            parts = list(s.stream([a]))
            if not parts:
                return np.zeros((0, s.out_channels), dtype=np.float32)
            return np.concatenate(parts)

    def stream(self, chunks: Iterable[ArrayLike], model: Optional[str] = None,
               **kw) -> Iterator[np.ndarray]:
        """Streams an input of any length: sends each chunk of ``chunks`` (arrays of shape
        (n, channels)) and yields the output as it comes back, while later chunks are still
        being sent. After the last chunk the model's tail is flushed and yielded too.
        Options as :meth:`open`."""
        with self.open(model, **kw) as s:
            yield from s.stream(chunks)

    def subscribe(self, stream: str, *, format: Union[str, int] = "f32",
                  channels: int = 0) -> Subscription:
        """Follows a published stream: returns a :class:`Subscription` to iterate over.
        Raises :class:`ServerError` with code unknown_stream (9) when nobody publishes it."""
        if not stream:
            raise ValueError("subscribe: a stream name is required")
        hello = framed.Hello(framed.SUBSCRIBE, framed.format_of(format), 0, int(channels), 0,
                             "", stream)
        sub = self._session(Subscription, hello)
        sub.timeout = None
        return sub

    def ping(self, model: Optional[str] = None) -> float:
        """Opens a session (on ``model``, or the listener's default), PINGs the server and
        returns the round trip in seconds: whether the server is up and answering."""
        with self.open(model) as s:
            return s.ping()
