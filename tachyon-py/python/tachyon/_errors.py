"""Exceptions raised by :mod:`tachyon`, mapped one to one from the Rust error enum."""

from __future__ import annotations

import enum

__all__ = [
    "RpcCode",
    "ChannelOverrunError",
    "CorruptChannelError",
    "TachyonError",
    "PeerDeadError",
    "PeerClosedError",
    "BusClosedError",
    "TachyonConnectionError",
    "TachyonTlsError",
    "TachyonPermissionError",
    "AddressInUseError",
    "AbiMismatchError",
    "BufferFullError",
    "TachyonTimeoutError",
    "TachyonRpcError",
]


class TachyonError(Exception):
    """Base class of every Tachyon error."""


class PeerDeadError(TachyonError):
    """The peer exited, closed its bus, or the shared ring is in the FatalError state.

    Messages the peer sent before it died are delivered first.
    """


class PeerClosedError(PeerDeadError):
    """The peer closed its bus on purpose; everything it sent was delivered.

    A subclass of :class:`PeerDeadError`, so code that handles a departed peer handles
    both; catch this one first to tell a clean exit from a crash. ``for msg in bus``
    simply ends on it.
    """


class BusClosedError(TachyonError):
    """This side's bus was closed: by ``close()`` (possibly from another thread, which
    wakes every call blocked on it) or by leaving its ``with`` block."""


class TachyonConnectionError(TachyonError, ConnectionError):
    """Nobody listens at the socket path, or the server turned this connector away."""


class TachyonTlsError(TachyonConnectionError):
    """TLS failed: a certificate or key that does not load, a server that refused this
    client's certificate (or asked for one it did not send), a server whose certificate
    the CA did not sign, or a peer that does not speak TLS at all."""


class TachyonPermissionError(TachyonError, PermissionError):
    """The other side runs as a user this side does not trust, or refused this user."""


class AddressInUseError(TachyonError, OSError):
    """Another process is listening on the socket path."""


class AbiMismatchError(TachyonError):
    """The peer speaks another ABI version or bus kind (SPSC vs RPC)."""


class BufferFullError(TachyonError):
    """The ring had no room and the call was not allowed to wait (``timeout=0``)."""


class CorruptChannelError(TachyonError):
    """A channel file is not a valid channel (not one at all, another layout version,
    truncated, or with impossible indices or entries)."""


class ChannelOverrunError(TachyonError):
    """A channel reader fell behind: ``lost`` entries after id ``last_id`` were
    overwritten before it read them."""

    def __init__(self, lost: int, last_id: int) -> None:
        super().__init__(f"{lost} entries after id {last_id} were overwritten before they were read")
        self.lost = lost
        self.last_id = last_id


class TachyonTimeoutError(TachyonError, TimeoutError):
    """A blocking call's ``timeout`` passed."""


class RpcCode(enum.IntEnum):
    """Error codes of the 0xFFFF error reply: the core's table (``tachyon::rpc::code``),
    the same names and values as Node's ``RpcCode``. Applications use their own codes
    above these."""

    UPSTREAM = 0
    """The peer sent upstream's 2-byte sentinel with no detail."""
    UNKNOWN_MSG_TYPE = 1
    """No handler is registered for the msg_type."""
    HANDLER_ERROR = 2
    """The handler raised (or returned) an error."""
    HANDLER_PANIC = 3
    """The handler panicked (the server kept serving)."""
    BAD_REQUEST = 4
    """The request payload could not be decoded for this handler."""
    BAD_RESPONSE = 5
    """The handler's response could not be encoded."""
    MALFORMED = 6
    """The error reply itself was malformed."""
    DEADLINE_EXCEEDED = 7
    """The call's deadline passed before a handler could start it."""
    CANCELLED = 8
    """The caller cancelled the call."""
    UNSUPPORTED = 9
    """The transport cannot carry this kind of call."""


class TachyonRpcError(TachyonError):
    """The remote handler failed: the callee answered with the 0xFFFF error reply.

    ``msg_type`` is the request's msg_type, ``code`` one of :class:`RpcCode` (or an
    application's own), ``message`` the server's text.
    """

    def __init__(self, msg_type: int, code: int, message: str) -> None:
        super().__init__(f"remote call to msg_type {msg_type} failed (code {code}): {message}")
        self.msg_type = msg_type
        self.code = code
        self.message = message
