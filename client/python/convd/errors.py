# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by the convd client, and the framed protocol's error codes."""

from __future__ import annotations

import enum
from typing import Optional, Union

__all__ = [
    "ErrorCode",
    "ConvdError",
    "ServerError",
    "ProtocolError",
    "ConvdConnectionError",
    "ConvdTimeout",
    "LineError",
    "LineProtocolError",
    "error_name",
]


class ErrorCode(enum.IntEnum):
    """The codes of the framed protocol's ERROR message (docs/PROTOCOL.md, "Error codes")."""

    BAD_MESSAGE = 1
    """malformed, unexpected or out-of-order message"""
    UNSUPPORTED_VERSION = 2
    """the HELLO's version; the text names the versions spoken"""
    UNKNOWN_MODEL = 3
    """no model of that name (or none named and no default)"""
    BAD_FORMAT = 4
    """sample format, channels, rate or block not possible with this model"""
    NONFINITE = 5
    """a NaN or infinite sample, and the listener rejects them"""
    TOO_LARGE = 6
    """a message longer than the receiver's max_message"""
    TIMEOUT = 7
    """the peer was silent too long"""
    BUSY = 8
    """no room: too many clients, or a subscriber too slow"""
    UNKNOWN_STREAM = 9
    """subscribe: no stream of that name is published"""
    INTERNAL = 10
    """the server failed"""
    SHUTTING_DOWN = 11
    """the server is stopping"""


def error_name(code: int) -> str:
    """The protocol's name of an error code ("unknown_model"), "unknown" for others."""
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return "unknown"


class ConvdError(Exception):
    """Base class of every error this package raises.

    ``code`` is the framed protocol's error code (an :class:`ErrorCode` when it is a known
    one) where there is one, else None.
    """

    code: Optional[Union[ErrorCode, int]] = None

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        if code is not None:
            try:
                self.code = ErrorCode(code)
            except ValueError:
                self.code = code

    @property
    def name(self) -> Optional[str]:
        """The code's name ("unknown_model"), or None without a code."""
        return None if self.code is None else error_name(int(self.code))


class ServerError(ConvdError):
    """The server sent ERROR: it refused the HELLO, or failed the session later.

    ``code`` is the ERROR's code, ``text`` its text; ``accepted`` says whether the session
    had been accepted (False: the HELLO was refused).
    """

    def __init__(self, peer: str, code: int, text: str, accepted: bool) -> None:
        self.text = text
        self.accepted = accepted
        self.peer = peer
        what = "server error" if accepted else "the server refused"
        super().__init__(
            f"{peer}: {what}: {error_name(code)} ({code}): {text or '(no text)'}", code
        )


class ProtocolError(ConvdError):
    """What the server sent breaks the framed protocol (or a message given to the codec is
    malformed). ``code`` is the ERROR code a receiver answers it with."""


class ConvdConnectionError(ConvdError, ConnectionError):
    """The connection could not be made, or it ended before the stream did."""


class ConvdTimeout(ConvdError, TimeoutError):
    """The server did not answer within the client's timeout."""


class LineError:
    """One ``!ERR`` line of the line protocol.

    ``code`` is its code ("bad_number", "wrong_count", "nonfinite", "out_of_range",
    "line_too_long", or a server code such as "shutting_down"); ``line`` and ``field`` the
    input line and field it names (None where it names none); ``text`` the whole line
    without ``!ERR``.
    """

    __slots__ = ("code", "line", "field", "text")

    def __init__(
        self, code: str, line: Optional[int], field: Optional[int], text: str
    ) -> None:
        self.code = code
        self.line = line
        self.field = field
        self.text = text

    def __repr__(self) -> str:
        return f"LineError({self.code!r}, line={self.line}, field={self.field}, text={self.text!r})"

    def __str__(self) -> str:
        return "!ERR " + self.text


class LineProtocolError(ConvdError):
    """A line-protocol exchange had ``!ERR`` lines: ``errors`` lists them (the first one's
    code is ``line_code``), ``frames`` holds the output that came all the same."""

    def __init__(self, peer: str, errors: "list[LineError]", frames: object) -> None:
        self.errors = errors
        self.frames = frames
        self.line_code = errors[0].code if errors else None
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{peer}: {errors[0]}{more}" if errors else f"{peer}: error")
