# SPDX-License-Identifier: Apache-2.0
"""convd: a client of the convd streaming neural DSP daemon.

    import numpy as np, convd
    client = convd.Client("127.0.0.1", 7401)
    y = client.process(np.zeros((48000, 1), np.float32), model="drive")

:class:`Client` speaks the framed protocol (process, stream, subscribe, ping);
:mod:`convd.line` and :mod:`convd.raw` the text and raw ones; :mod:`convd.framed` is the
codec. Errors are :class:`ConvdError` subclasses; :class:`ServerError` carries the
protocol's error ``code`` (an :class:`ErrorCode`).
"""

from . import framed, line, raw
from .client import DEFAULT_PORT, Accept, Client, Session, Subscription
from .errors import (
    ConvdConnectionError,
    ConvdError,
    ConvdTimeout,
    ErrorCode,
    LineError,
    LineProtocolError,
    ProtocolError,
    ServerError,
)

__version__ = "0.1.0"

__all__ = [
    "Client", "Session", "Subscription", "Accept", "DEFAULT_PORT",
    "ConvdError", "ServerError", "ProtocolError", "ConvdConnectionError", "ConvdTimeout",
    "ErrorCode", "LineError", "LineProtocolError",
    "framed", "line", "raw", "__version__",
]
