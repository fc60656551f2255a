# SPDX-License-Identifier: Apache-2.0
"""The raw protocol: bare samples in, bare samples out (docs/PROTOCOL.md, "Raw").

    import convd.raw
    y = convd.raw.process("127.0.0.1", 7400, x)     # a raw listener's model, f32le

A raw listener's format and channels are its configuration's; nothing is negotiated, so the
caller says what the output has (``out_channels``, by default the input's).
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from . import _io, framed

__all__ = ["process", "DEFAULT_PORT"]

DEFAULT_PORT = 7400
"""The raw listener's port in convd's shipped configuration."""


def process(host: str, port: int = DEFAULT_PORT, frames=None, *,
            out_channels: Optional[int] = None, format: Union[str, int] = "f32",
            timeout: Optional[float] = 10.0) -> np.ndarray:
    """Sends frames of shape (n, channels) (or (n,)) in the listener's sample format
    (``format``: "f32" or "s16"), ends the stream, and returns the whole output as float32
    of shape (m, out_channels). A server that refuses the input (a NaN under
    ``nonfinite = reject``) closes the connection: that raises
    :class:`~convd.errors.ConvdConnectionError`."""
    if frames is None:
        raise ValueError("frames are required")
    a = np.asarray(frames, dtype=np.float32)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"frames of shape {a.shape}: (frames, channels) or (frames,)")
    fmt = framed.format_of(format)
    ch = out_channels or a.shape[1]
    out = _io.exchange(host, port, framed.encode_samples(a, fmt), timeout)
    fb = framed.sample_bytes(fmt) * ch
    whole = len(out) - len(out) % fb
    return framed.decode_samples(out[:whole], fmt, ch)
