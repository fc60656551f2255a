# SPDX-License-Identifier: Apache-2.0
"""Send-while-receiving over one TCP connection, for the raw and line protocols."""

from __future__ import annotations

import selectors
import socket
from typing import Optional

from .errors import ConvdConnectionError, ConvdTimeout

_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


def peer_name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect(host: str, port: int, timeout: Optional[float]) -> socket.socket:
    peer = peer_name(host, port)
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout as e:
        raise ConvdTimeout(f"connect {peer}: timed out after {timeout:g} s") from e
    except OSError as e:
        raise ConvdConnectionError(f"connect {peer}: {e.strerror or e}") from e
    s.setblocking(False)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    return s


def exchange(host: str, port: int, data: bytes, timeout: Optional[float]) -> bytes:
    """Sends ``data``, shuts down the write side (the end of the stream for raw and line
    listeners), and returns everything the server sends until it closes. Reads while it
    sends, so any length works. ``timeout`` bounds each wait for the server."""
    peer = peer_name(host, port)
    s = connect(host, port, timeout)
    out = bytearray()
    view = memoryview(data)
    off = 0
    shut = False
    sel = selectors.DefaultSelector()
    try:
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        events = selectors.EVENT_READ | selectors.EVENT_WRITE
        while True:
            if off == len(view) and not shut:
                s.shutdown(socket.SHUT_WR)
                shut = True
            want = selectors.EVENT_READ | (0 if shut else selectors.EVENT_WRITE)
            if want != events:
                sel.modify(s, want)
                events = want
            ready = sel.select(timeout)
            if not ready:
                raise ConvdTimeout(f"{peer}: timed out after {timeout:g} s "
                                   + ("waiting for output" if shut else "sending"))
            mask = ready[0][1]
            if mask & selectors.EVENT_WRITE and not shut:
                try:
                    off += s.send(view[off: off + (1 << 20)], _NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    raise ConvdConnectionError(
                        f"send to {peer}: {e.strerror or e} (after {off} of {len(view)} bytes;"
                        f" {len(out)} bytes received)") from e
            if mask & selectors.EVENT_READ:
                try:
                    b = s.recv(1 << 18)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise ConvdConnectionError(f"receive from {peer}: {e.strerror or e}") from e
                if not b:
                    if not shut:
                        raise ConvdConnectionError(
                            f"{peer}: the server closed the connection after {off} of "
                            f"{len(view)} bytes were sent")
                    return bytes(out)
                out += b
    finally:
        view.release()
        sel.close()
        s.close()
