"""Tachyon: shared-memory IPC between processes, wire-compatible with Tachyon ABI v0x04.

The heavy lifting happens in the Rust core (:mod:`tachyon._tachyon`); this package only
re-exports it with Python exceptions and types.

>>> from tachyon import make_type_id, msg_type, route_id
>>> t = make_type_id(3, 7)
>>> (route_id(t), msg_type(t))
(3, 7)
"""

from __future__ import annotations

from ._errors import (
    AbiMismatchError,
    BufferFullError,
    PeerDeadError,
    TachyonError,
    TachyonTimeoutError,
)
from ._tachyon import Bus, Message, make_type_id, msg_type, route_id

__all__ = [
    "AbiMismatchError",
    "Bus",
    "BufferFullError",
    "Message",
    "PeerDeadError",
    "TachyonError",
    "TachyonTimeoutError",
    "make_type_id",
    "msg_type",
    "route_id",
]
