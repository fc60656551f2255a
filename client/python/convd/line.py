# SPDX-License-Identifier: Apache-2.0
"""The line protocol: one frame per line of text (docs/PROTOCOL.md, "Line").

    import convd.line
    y = convd.line.process("127.0.0.1", 7402, x)      # x: (frames, channels)
    text = convd.line.format_frames(x)                 # b"0.100000001,-0.25\\n..."
    frames, errors = convd.line.parse_output(text)     # numbers and "!ERR" lines

Values are written as C's "%.9g" (nine significant digits: the same float32 when read back),
so the text way gives the same numbers as the framed one.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple, Union

import numpy as np

from . import _io
from .errors import LineError, LineProtocolError

__all__ = ["format_frames", "parse_output", "parse_error", "exchange", "process",
           "DEFAULT_PORT", "MAX_LINE"]

DEFAULT_PORT = 7402
"""The line listener's port in convd's shipped configuration."""
MAX_LINE = 65536
"""Bytes of one input line at most (without its LF)."""

_ERR = re.compile(r"^!ERR (\S+)(?: line (\d+)(?: field (\d+))?:)?")


def _as_frames(frames) -> np.ndarray:
    a = np.asarray(frames, dtype=np.float32)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"frames of shape {a.shape}: (frames, channels) or (frames,)")
    return a


def format_frames(frames) -> bytes:
    """Frames of shape (n, channels) (or (n,)) as lines: values as "%.9g", separated by
    ",", each line ended by LF."""
    a = _as_frames(frames)
    if a.size == 0:
        return b""
    text = np.char.mod("%.9g", a.astype(np.float64))
    return ("\n".join(",".join(row) for row in text.tolist()) + "\n").encode("ascii")


def parse_error(line: str) -> LineError:
    """An ``!ERR`` line (with or without its LF) as a :class:`LineError`."""
    line = line.rstrip("\r\n")
    m = _ERR.match(line)
    if m is None:
        raise ValueError(f"not an !ERR line: {line[:80]!r}")
    return LineError(m.group(1), int(m.group(2)) if m.group(2) else None,
                     int(m.group(3)) if m.group(3) else None, line[5:])


def parse_output(data: Union[bytes, str],
                 channels: Optional[int] = None) -> Tuple[np.ndarray, List[LineError]]:
    """What a line listener sent: the frames (float32, shape (n, channels)) and the
    ``!ERR`` lines, in order. ``channels`` is the output's channel count when known (else
    the first line's; 1 when there are no frames)."""
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    errors: List[LineError] = []
    rows: List[List[str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("!ERR"):
            errors.append(parse_error(line))
            continue
        if not line:
            continue
        fields = line.split(",")
        if channels is None:
            channels = len(fields)
        if len(fields) != channels:
            raise ValueError(f"output line {n}: {len(fields)} values, expected {channels}")
        rows.append(fields)
    if not rows:
        return np.zeros((0, channels or 1), dtype=np.float32), errors
    return np.array(rows, dtype=np.float64).astype(np.float32), errors


def exchange(host: str, port: int, frames, *, timeout: Optional[float] = 10.0,
             channels: Optional[int] = None) -> Tuple[np.ndarray, List[LineError]]:
    """Sends frames to a line listener, ends the stream, and returns the whole output and
    the ``!ERR`` lines the server sent (``channels``: the output's, for an empty output)."""
    data = frames if isinstance(frames, (bytes, bytearray)) else format_frames(frames)
    return parse_output(_io.exchange(host, port, bytes(data), timeout), channels)


def process(host: str, port: int = DEFAULT_PORT, frames=None, *,
            timeout: Optional[float] = 10.0, channels: Optional[int] = None) -> np.ndarray:
    """Runs frames of shape (n, channels) through a line listener's model and returns the
    whole output (float32, shape (m, out_channels)). ``frames`` may also be text already
    (bytes, one frame per line). Raises :class:`~convd.errors.LineProtocolError` (its
    ``errors`` and the ``frames`` that came) when the server answered ``!ERR``."""
    if frames is None:
        raise ValueError("frames are required")
    out, errors = exchange(host, port, frames, timeout=timeout, channels=channels)
    if errors:
        raise LineProtocolError(_io.peer_name(host, port), errors, out)
    return out
