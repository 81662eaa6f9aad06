"""The decorator API: ``@tachyon_rpc``, :class:`RpcEndpoint` and :class:`RpcDispatcher`.

Mirrors upstream Tachyon's Python package, so its users can switch. Unlike upstream, an
unknown msg_type or a failing handler gets the structured error reply (2-byte big-endian
msg_type, then MessagePack ``{code, message}``, encoded by the Rust core), and the
caller raises :class:`TachyonRpcError` instead of returning the error bytes.
"""

from __future__ import annotations

import struct
from typing import Callable, Optional, TypeVar, Union

from . import _tachyon
from ._errors import PeerDeadError

__all__ = ["MSG_TYPE_ERROR", "RpcDispatcher", "RpcEndpoint", "tachyon_rpc", "_decode_error"]

MSG_TYPE_ERROR: int = 0xFFFF
"""The reserved msg_type of error replies."""

T = TypeVar("T")
Handler = Callable[[memoryview], Union[bytes, bytearray, memoryview]]


def _decode_error(payload: Union[bytes, memoryview]) -> int:
    """The msg_type that failed, from an error reply payload (as upstream decodes it)."""
    return int(struct.unpack("!H", bytes(payload[:2]))[0])


class RpcEndpoint:
    """A ``memoryview -> bytes`` handler bound to its msg_type.

    Callable locally, which is handy in unit tests: the payload is wrapped in a
    memoryview, so the handler sees the same thing as when serving.
    """

    def __init__(self, fn: Handler, msg_type: int) -> None:
        if not 0 <= msg_type < MSG_TYPE_ERROR:
            raise ValueError(f"msg_type must be in [0, {MSG_TYPE_ERROR - 1}], got {msg_type}")
        self._fn = fn
        self.msg_type = msg_type
        self.__name__ = getattr(fn, "__name__", "handler")
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, payload: Union[bytes, bytearray, memoryview]) -> Union[bytes, bytearray, memoryview]:
        return self._fn(payload if isinstance(payload, memoryview) else memoryview(payload))

    def call(
        self,
        bus: _tachyon.RpcBus,
        payload: bytes,
        on_response: Optional[Callable[[memoryview], T]] = None,
        timeout: Optional[float] = None,
    ) -> Union[bytes, T]:
        """Calls this endpoint through ``bus`` (the caller end) and returns the reply.

        :raises TachyonRpcError: the callee answered with an error reply.
        :raises TachyonTimeoutError: ``timeout`` seconds passed.
        """
        cid = bus.call(payload, self.msg_type, timeout=timeout)
        with bus.wait(cid, timeout=timeout) as rx:
            if on_response is not None:
                return on_response(memoryview(rx.data))
            return rx.data

    def __repr__(self) -> str:
        return f"RpcEndpoint(msg_type={self.msg_type}, fn={self.__name__!r})"


def tachyon_rpc(msg_type: int) -> Callable[[Handler], RpcEndpoint]:
    """Binds a ``memoryview -> bytes`` function to ``msg_type`` (0..65534)."""
    if not 0 <= msg_type < MSG_TYPE_ERROR:
        raise ValueError(f"msg_type must be in [0, {MSG_TYPE_ERROR - 1}], got {msg_type}")

    def decorator(fn: Handler) -> RpcEndpoint:
        return RpcEndpoint(fn, msg_type)

    return decorator


class RpcDispatcher:
    """Routes requests by msg_type to registered endpoints on the callee end of a bus."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[int, RpcEndpoint] = {}

    def register(self, endpoint: RpcEndpoint) -> "RpcDispatcher":
        """Registers ``endpoint``; returns ``self`` for chaining.

        :raises ValueError: the msg_type is 0xFFFF or already registered.
        """
        if endpoint.msg_type == MSG_TYPE_ERROR:
            raise ValueError(f"msg_type={MSG_TYPE_ERROR:#06x} is reserved for protocol errors")
        if endpoint.msg_type in self._handlers:
            existing = self._handlers[endpoint.msg_type].__name__
            raise ValueError(f"msg_type={endpoint.msg_type} already registered by {existing!r}")
        self._handlers[endpoint.msg_type] = endpoint
        return self

    def handler(self, msg_type: int) -> Callable[[Handler], RpcEndpoint]:
        """Decorates and registers in one step."""

        def decorator(fn: Handler) -> RpcEndpoint:
            ep = RpcEndpoint(fn, msg_type)
            self.register(ep)
            return ep

        return decorator

    def serve_once(self, bus: _tachyon.RpcBus, timeout: Optional[float] = None) -> None:
        """Serves one request. An unknown msg_type or a failing handler gets the error
        reply first, so the caller is never left waiting, then raises here.

        :raises KeyError: no handler for the msg_type (after the error reply).
        :raises RuntimeError: the handler raised (after the error reply).
        """
        with bus.serve(timeout=timeout) as rx:
            cid, mt, data = rx.correlation_id, rx.type_id, rx.data
        endpoint = self._handlers.get(mt)
        if endpoint is None:
            bus.reply_error(cid, mt, _tachyon.RPC_CODE_UNKNOWN_MSG_TYPE, f"no handler for msg_type {mt}")
            raise KeyError(f"No handler registered for msg_type={mt} (error reply sent to caller, cid={cid})")
        try:
            response = endpoint(memoryview(data))
        except Exception as e:
            bus.reply_error(cid, mt, _tachyon.RPC_CODE_HANDLER_ERROR, f"{type(e).__name__}: {e}")
            raise RuntimeError(
                f"Handler {endpoint.__name__!r} raised an exception (error reply sent to caller, cid={cid})"
            ) from e
        bus.reply(cid, bytes(response), mt)

    def serve_forever(self, bus: _tachyon.RpcBus) -> None:
        """Serves until the caller is gone (``PeerDeadError``) or Ctrl-C."""
        while True:
            try:
                self.serve_once(bus)
            except (KeyError, RuntimeError):
                continue
            except (KeyboardInterrupt, PeerDeadError):
                return
