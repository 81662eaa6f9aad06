"""Runtime of the modules ``python -m tachyon.codegen`` writes from ``schemas/*.tachyon``.

Generated modules import this as ``_rt``. What users meet directly:

- :class:`ServiceError`: raise it from a handler to answer with an application error
  code declared in the schema (``error bad_order = 100;``).
- :class:`Description` and :class:`SchemaMismatchError`: what ``client.describe()`` and
  ``client.verify()`` give.
- :class:`Caller`: what a generated client calls through (an :class:`tachyon.RpcBus`).

Structs are ``msgspec.Struct`` classes: typed and validating, unknown keys ignored,
optional fields absent or nil, wire-compatible with the Rust and TypeScript generators.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import (
    Annotated,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Optional,
    Protocol,
    TypeVar,
    Union,
)

import msgspec

from . import _tachyon, aio
from ._errors import TachyonError
from .rpc import RpcEndpoint, _BadRequest, _items

__all__ = [
    "Caller",
    "Description",
    "SchemaMismatchError",
    "ServiceError",
]

U8 = Annotated[int, msgspec.Meta(ge=0, le=0xFF)]
U16 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]
# msgspec takes no bound beyond int64; MessagePack itself cannot carry more than u64.
U64 = Annotated[int, msgspec.Meta(ge=0)]
I8 = Annotated[int, msgspec.Meta(ge=-0x80, le=0x7F)]
I16 = Annotated[int, msgspec.Meta(ge=-0x8000, le=0x7FFF)]
I32 = Annotated[int, msgspec.Meta(ge=-0x8000_0000, le=0x7FFF_FFFF)]
I64 = Annotated[int, msgspec.Meta(ge=-0x8000_0000_0000_0000, le=0x7FFF_FFFF_FFFF_FFFF)]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Bytes = Union[bytes, bytearray, memoryview]

_ENCODER = msgspec.msgpack.Encoder()


class Caller(Protocol):
    """A caller end: :class:`tachyon.RpcBus` (shared memory) and later transports."""

    def invoke(self, payload: Bytes, msg_type: int, timeout: Optional[float] = None) -> bytes: ...

    def notify(self, payload: Bytes, msg_type: int, timeout: Optional[float] = None) -> None: ...

    def call_stream(self, payload: Bytes, msg_type: int, timeout: Optional[float] = None) -> _tachyon.ReplyStream: ...


class ServiceError(TachyonError):
    """Raised by a handler: the caller gets an error reply with ``code`` (an application
    code from the schema, 100 and up) and ``message``, as ``TachyonRpcError``. A
    :class:`TachyonError`, so ``except tachyon.TachyonError`` catches it too."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.rpc_code = int(code)
        self.message = message


class SchemaMismatchError(TachyonError):
    """The server serves another schema than the client was generated for. ``server_only``
    and ``client_only`` are the canonical schema lines only one side has."""

    def __init__(self, message: str, server_only: list[str], client_only: list[str]) -> None:
        super().__init__(message)
        self.server_only = server_only
        self.client_only = client_only


class Description(msgspec.Struct, kw_only=True):
    """What a generated server answers to ``describe`` (msg_type 0x7FFF)."""

    package: str
    service: str
    fingerprint: str
    schema: str

    def verify(self, ours: "Description") -> None:
        """Raises :class:`SchemaMismatchError` unless ``self`` (the server's) is ``ours``."""
        if (self.package, self.service, self.fingerprint) == (ours.package, ours.service, ours.fingerprint):
            return
        theirs, mine = self.schema.splitlines(), ours.schema.splitlines()
        server_only = [line for line in theirs if line not in mine]
        client_only = [line for line in mine if line not in theirs]
        lines = [
            f"the server serves {self.package}.{self.service} (fingerprint {self.fingerprint}), "
            f"this client was generated for {ours.package}.{ours.service} (fingerprint {ours.fingerprint})"
        ]
        lines += [f"  server only: {line}" for line in server_only]
        lines += [f"  client only: {line}" for line in client_only]
        raise SchemaMismatchError("\n".join(lines), server_only, client_only)


_DESCRIPTION = msgspec.msgpack.Decoder(Description)


def encode(value: Any) -> bytes:
    """MessagePack of a generated struct (or any msgspec-encodable value)."""
    return _ENCODER.encode(value)


def decode_description(data: Bytes) -> Description:
    """Decodes a ``describe`` reply."""
    return _DESCRIPTION.decode(data)


async def invoke_async(bus: Caller, payload: Bytes, msg_type: int, timeout: Optional[float]) -> bytes:
    """Awaits the reply's bytes (the event loop keeps running)."""
    return await aio.call_async(bus, payload, msg_type, timeout)  # type: ignore[arg-type]


def _finish(result: Union[Resp, Awaitable[Resp]], out: Callable[[Resp], bytes]) -> Union[bytes, Awaitable[bytes]]:
    if inspect.isawaitable(result):
        awaitable = result

        async def later() -> bytes:
            return out(await awaitable)

        return later()
    return out(result)


def _decode(decoder: "msgspec.msgpack.Decoder[Req]", request: memoryview) -> Req:
    try:
        return decoder.decode(request)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise _BadRequest(f"cannot decode the request: {e}") from e


def _endpoint(msg_type: int, name: str, fn: Callable[[memoryview], Any]) -> RpcEndpoint:
    fn.__name__ = name
    return RpcEndpoint(fn, int(msg_type))


def typed_endpoint(
    msg_type: int,
    name: str,
    handler: Callable[[Req], Union[Resp, Awaitable[Resp]]],
    request: "msgspec.msgpack.Decoder[Req]",
) -> RpcEndpoint:
    """A MessagePack-in, MessagePack-out endpoint (a request that does not decode gets
    ``BAD_REQUEST``)."""
    return _endpoint(msg_type, name, lambda req: _finish(handler(_decode(request, req)), encode))


def raw_endpoint(msg_type: int, name: str, handler: Callable[[memoryview], Union[Bytes, Awaitable[Bytes]]]) -> RpcEndpoint:
    """A bytes-in, bytes-out endpoint (the request is read in place)."""
    return _endpoint(msg_type, name, lambda req: _finish(handler(req), bytes))


def raw_in_endpoint(msg_type: int, name: str, handler: Callable[[memoryview], Union[Resp, Awaitable[Resp]]]) -> RpcEndpoint:
    """Raw request, MessagePack reply."""
    return _endpoint(msg_type, name, lambda req: _finish(handler(req), encode))


def raw_out_endpoint(
    msg_type: int,
    name: str,
    handler: Callable[[Req], Union[Bytes, Awaitable[Bytes]]],
    request: "msgspec.msgpack.Decoder[Req]",
) -> RpcEndpoint:
    """MessagePack request, raw reply."""
    return _endpoint(msg_type, name, lambda req: _finish(handler(_decode(request, req)), bytes))


def _ignore(_value: object) -> bytes:
    return b""


def oneway_endpoint(
    msg_type: int,
    name: str,
    handler: Callable[[Req], Union[None, Awaitable[None]]],
    request: "msgspec.msgpack.Decoder[Req]",
) -> RpcEndpoint:
    """A oneway method: a oneway send (correlation id 0) gets no reply; a normal call
    gets an empty one."""
    return _endpoint(msg_type, name, lambda req: _finish(handler(_decode(request, req)), _ignore))


def oneway_raw_endpoint(msg_type: int, name: str, handler: Callable[[memoryview], Union[None, Awaitable[None]]]) -> RpcEndpoint:
    """A oneway method taking raw bytes."""
    return _endpoint(msg_type, name, lambda req: _finish(handler(req), _ignore))


def stream_endpoint(
    msg_type: int,
    name: str,
    handler: Callable[[Any], Any],
    request: "Optional[msgspec.msgpack.Decoder[Any]]",
    *,
    typed_items: bool,
) -> RpcEndpoint:
    """A server-streaming endpoint: ``handler`` returns an iterable or async iterable of
    items (MessagePack-encoded if ``typed_items``); a request that does not decode gets
    ``BAD_REQUEST``."""
    out: Callable[[Any], bytes] = encode if typed_items else bytes

    def serve(req: memoryview) -> Iterator[bytes]:
        value = req if request is None else _decode(request, req)
        return _items(handler(value), out)

    serve.__name__ = name
    return RpcEndpoint(serve, int(msg_type), stream=True)


def open_stream(
    bus: Caller,
    payload: Bytes,
    msg_type: int,
    timeout: Optional[float],
    decoder: "Optional[msgspec.msgpack.Decoder[Resp]]",
) -> Iterator[Resp]:
    """Starts a streaming call now and yields its items, decoded if ``decoder`` is given
    (raw ``bytes`` otherwise). Closing the iterator early cancels the call."""
    return _read_items(bus.call_stream(payload, msg_type, timeout), decoder)


def _read_items(replies: _tachyon.ReplyStream, decoder: "Optional[msgspec.msgpack.Decoder[Resp]]") -> Iterator[Resp]:
    with replies:
        for item in replies:
            yield item if decoder is None else decoder.decode(item)  # type: ignore[misc]


async def open_stream_async(
    bus: Caller,
    payload: Bytes,
    msg_type: int,
    timeout: Optional[float],
    decoder: "Optional[msgspec.msgpack.Decoder[Resp]]",
) -> AsyncIterator[Resp]:
    """``async for`` over a streaming call: each item is awaited on a worker thread, so
    the event loop keeps running. Leaving the loop early cancels the call."""
    replies = bus.call_stream(payload, msg_type, timeout)
    try:
        while True:
            item = await asyncio.to_thread(replies.next)
            if item is None:
                return
            yield item if decoder is None else decoder.decode(item)  # type: ignore[misc]
    finally:
        replies.cancel()


def describe_endpoint(description: Description) -> RpcEndpoint:
    """The generated ``describe`` (msg_type 0x7FFF)."""
    reply = encode(description)
    return _endpoint(0x7FFF, "describe", lambda _req: reply)


def run_awaitable(result: Awaitable[Any]) -> Any:
    """Runs an ``async def`` handler's result to completion on a thread with no event
    loop (the multi-client server's native threads)."""

    async def wrap() -> Any:
        return await result

    return asyncio.run(wrap())


_ = _tachyon  # the native module backs every call made through this runtime
