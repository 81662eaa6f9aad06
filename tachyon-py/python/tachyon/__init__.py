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
    AddressInUseError,
    BufferFullError,
    BusClosedError,
    ChannelOverrunError,
    CorruptChannelError,
    PeerClosedError,
    PeerDeadError,
    RpcCode,
    TachyonConnectionError,
    TachyonError,
    TachyonPermissionError,
    TachyonRpcError,
    TachyonTimeoutError,
    TachyonTlsError,
)
from ._lowlevel import TachyonBus, TachyonRpcBus
from .channel import Channel, ChannelEntry, ChannelRead
from ._tachyon import (
    Bus,
    Message,
    Readiness,
    ReplyStream,
    RpcBus,
    RpcRxGuard,
    RxBatchGuard,
    SharedBuffer,
    TcpClient,
    RxGuard,
    RxMsgView,
    TxGuard,
    make_type_id,
    msg_type,
    method_id,
    tiga_call,
    route_id,
)
from .stats import BusStats, ServerStats
from . import _events
from .tls import NameAttribute, PeerIdentity, TlsOptions, peer_identity
from .schema import Description, SchemaMismatchError, ServiceError
from .rpc import MSG_TYPE_ERROR, MSG_TYPE_STREAM_END, RpcDispatcher, connect, connect_async, RpcEndpoint, RpcServer, _decode_error, tachyon_rpc

__version__ = "0.1.0"
"""This package's version (upstream's package exports one too)."""

RpcTxGuard = TxGuard
"""Upstream's name for the zero-copy call/reply slot (the same class as :class:`TxGuard`)."""

RpcMessage = RpcRxGuard
"""This package's earlier name for :class:`RpcRxGuard`."""

RxBatch = RxBatchGuard
"""This package's earlier name for :class:`RxBatchGuard`."""

rpc_listen = RpcBus.listen
"""Upstream's name for :meth:`RpcBus.listen`."""
rpc_connect = RpcBus.connect
"""Upstream's name for :meth:`RpcBus.connect`."""

__all__ = [
    "__version__",
    "MSG_TYPE_ERROR",
    "MSG_TYPE_STREAM_END",
    "BusStats",
    "ServerStats",
    "AbiMismatchError",
    "AddressInUseError",
    "Bus",
    "Channel",
    "ChannelEntry",
    "ChannelOverrunError",
    "ChannelRead",
    "CorruptChannelError",
    "BufferFullError",
    "Description",
    "SchemaMismatchError",
    "ServiceError",
    "BusClosedError",
    "Message",
    "PeerClosedError",
    "PeerDeadError",
    "Readiness",
    "ReplyStream",
    "RpcBus",
    "RpcDispatcher",
    "RpcEndpoint",
    "RpcMessage",
    "RpcRxGuard",
    "RpcServer",
    "SharedBuffer",
    "TcpClient",
    "connect",
    "connect_async",
    "RpcTxGuard",
    "RxBatch",
    "RxBatchGuard",
    "RxGuard",
    "RxMsgView",
    "TachyonBus",
    "TachyonRpcBus",
    "TachyonConnectionError",
    "TachyonError",
    "TachyonPermissionError",
    "TachyonRpcError",
    "RpcCode",
    "TachyonTimeoutError",
    "TachyonTlsError",
    "TlsOptions",
    "NameAttribute",
    "PeerIdentity",
    "peer_identity",
    "TxGuard",
    "_decode_error",
    "make_type_id",
    "msg_type",
    "method_id",
    "tiga_call",
    "route_id",
    "rpc_connect",
    "rpc_listen",
    "tachyon_rpc",
]

# The core's connection events go to the `tachyon` logger (see tachyon._events).
_events.start()
