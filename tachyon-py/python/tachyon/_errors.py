"""Exceptions raised by :mod:`tachyon`, mapped one to one from the Rust error enum."""

from __future__ import annotations

__all__ = [
    "TachyonError",
    "PeerDeadError",
    "AbiMismatchError",
    "BufferFullError",
    "TachyonTimeoutError",
]


class TachyonError(Exception):
    """Base class of every Tachyon error."""


class PeerDeadError(TachyonError):
    """The peer exited, closed its bus, or the shared ring is in the FatalError state.

    Messages the peer sent before it died are delivered first.
    """


class AbiMismatchError(TachyonError):
    """The peer speaks another ABI version or bus kind (SPSC vs RPC)."""


class BufferFullError(TachyonError):
    """The ring had no room and the call was not allowed to wait (``timeout=0``)."""


class TachyonTimeoutError(TachyonError, TimeoutError):
    """A blocking call's ``timeout`` passed."""
