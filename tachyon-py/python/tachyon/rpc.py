"""The decorator API: ``@tachyon_rpc``, :class:`RpcEndpoint` and :class:`RpcDispatcher`.

Mirrors upstream Tachyon's Python package, so its users can switch. Unlike upstream, an
unknown msg_type or a failing handler gets the structured error reply (2-byte big-endian
msg_type, then MessagePack ``{code, message}``, encoded by the Rust core), and the
caller raises :class:`TachyonRpcError` instead of returning the error bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import signal
import struct
import threading
import time
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

import msgspec

from . import _tachyon, aio
from ._errors import BusClosedError, PeerDeadError, RpcCode
from .stats import ServerStats
from .tls import TlsOptions

__all__ = [
    "MSG_TYPE_ERROR",
    "MSG_TYPE_STREAM_END",
    "RpcDispatcher",
    "RpcEndpoint",
    "RpcServer",
    "connect",
    "decode",
    "encode",
    "tachyon_rpc",
    "_decode_error",
]

MSG_TYPE_ERROR: int = 0xFFFF
"""The reserved msg_type of error replies."""

MSG_TYPE_STREAM_END: int = 0xFFFE
"""The msg_type that ends a stream (and carries a caller's cancel on shared memory)."""

logger = logging.getLogger("tachyon")
"""Where serving loops report handler failures (after the caller got its error reply)
and server-side problems, unless an ``on_error`` hook is given."""

ErrorHook = Callable[[Exception], Any]


def _report(error: Exception, on_error: Optional[ErrorHook]) -> None:
    """Hands a serving failure to ``on_error``, or logs it on the ``tachyon`` logger."""
    if on_error is not None:
        on_error(error)
    else:
        logger.error("%s", error, exc_info=error.__cause__ or error)


def _log_handler_failure(msg_type: int, error: BaseException) -> None:
    logger.error("handler for msg_type %d raised (the caller got the error reply)", msg_type, exc_info=error)


def _log_server_problem(message: str) -> None:
    logger.warning("rpc server: %s", message)

T = TypeVar("T")
Handler = Callable[[memoryview], Union[bytes, bytearray, memoryview]]


class _BadRequest(Exception):
    """A typed request that does not decode."""

    rpc_code = RpcCode.BAD_REQUEST


_ENCODER = msgspec.msgpack.Encoder()


def encode(value: Any) -> bytes:
    """MessagePack-encodes a Python value as the Rust typed handlers expect it: maps with
    string keys for structs (dataclasses become maps, nested ones too), arrays for
    tuples and lists, bin for bytes. (msgspec, the package's one MessagePack library.)"""
    try:
        return _ENCODER.encode(value)
    except (TypeError, msgspec.EncodeError) as e:
        raise TypeError(f"cannot MessagePack-encode {type(value).__name__}: {e}") from None


def decode(data: Union[bytes, memoryview], into: Optional[type] = None) -> Any:
    """Decodes MessagePack; a map becomes an instance of dataclass ``into`` if given.
    Keys the dataclass does not have are ignored, so a peer may add fields."""
    value = msgspec.msgpack.decode(data)
    if into is not None and dataclasses.is_dataclass(into) and isinstance(value, dict):
        names = {f.name for f in dataclasses.fields(into) if f.init}
        return into(**{k: v for k, v in value.items() if k in names})
    return value


def _request_type(fn: Callable[..., Any]) -> Optional[type]:
    """The dataclass annotated on a typed handler's first parameter, if any."""
    try:
        params = list(inspect.signature(fn, eval_str=True).parameters.values())
    except (NameError, TypeError, ValueError):
        return None
    ann = params[0].annotation if params else inspect.Parameter.empty
    return ann if isinstance(ann, type) and dataclasses.is_dataclass(ann) else None


def _decode_error(payload: Union[bytes, memoryview]) -> int:
    """The msg_type that failed, from an error reply payload (as upstream decodes it)."""
    return int(struct.unpack("!H", bytes(payload[:2]))[0])


class RpcEndpoint:
    """A handler bound to its msg_type.

    Raw (the default): a ``memoryview -> bytes`` function. Typed (``typed=True``): a
    function from a MessagePack-decoded Python value to a value to encode, wire-compatible
    with the Rust ``#[tachyon_rpc]`` typed handler of the same msg_type. The request is
    decoded into ``request_type`` (a dataclass), or into the dataclass annotated on the
    handler's first parameter when that annotation resolves at module level.

    Streaming (``stream=True``): the function returns an iterable (a generator, or an
    ``async`` generator) of items, each sent as one reply of the same call; returning
    ends the stream, raising ends it with the error reply. Served by :class:`RpcServer`.
    Callers read it with :meth:`stream`.

    Callable locally, which is handy in unit tests: a raw endpoint gets its payload as a
    memoryview, a typed one gets the value as is.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        msg_type: int,
        *,
        typed: bool = False,
        request_type: Optional[type] = None,
        response_type: Optional[type] = None,
        stream: bool = False,
    ) -> None:
        if not 0 <= msg_type < MSG_TYPE_ERROR:
            raise ValueError(f"msg_type must be in [0, {MSG_TYPE_ERROR - 1}], got {msg_type}")
        if stream and msg_type == MSG_TYPE_STREAM_END:
            raise ValueError(f"msg_type {MSG_TYPE_STREAM_END:#06x} ends streams; no stream may use it")
        self._fn = fn
        self.msg_type = msg_type
        self.typed = typed
        self.streaming = stream
        self.response_type = response_type
        self._request_type = request_type or (_request_type(fn) if typed else None)
        self.__name__ = getattr(fn, "__name__", "handler")
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, payload: Any) -> Any:
        if self.typed:
            return self._fn(payload)
        return self._fn(payload if isinstance(payload, memoryview) else memoryview(payload))

    def _handle(self, request: memoryview) -> bytes:
        """Serves one request: bytes in, bytes out (decoding and encoding typed ones)."""
        if not self.typed:
            result = self._fn(request)
            if inspect.isawaitable(result):
                # An `async def` handler served from a thread with no event loop.
                from .schema import run_awaitable

                result = run_awaitable(result)
            return bytes(result)
        try:
            value = decode(request, self._request_type)
        except Exception as e:
            raise _BadRequest(f"cannot decode the request: {type(e).__name__}: {e}") from e
        return encode(self._fn(value))

    async def _handle_async(self, request: memoryview) -> bytes:
        """As :meth:`_handle`, awaiting the handler's result if it is awaitable."""
        if not self.typed:
            result = self._fn(request)
            return bytes(await result if inspect.isawaitable(result) else result)
        try:
            value = decode(request, self._request_type)
        except Exception as e:
            raise _BadRequest(f"cannot decode the request: {type(e).__name__}: {e}") from e
        result = self._fn(value)
        return encode(await result if inspect.isawaitable(result) else result)

    def _serve_bytes(self, request: bytes) -> bytes:
        """Entry point of the multi-client server's native threads."""
        return self._handle(memoryview(request))

    def _stream_bytes(self, request: bytes) -> Iterator[bytes]:
        """Entry point of the multi-client server's native threads for a streaming
        endpoint: the handler's items as bytes (encoded if typed)."""
        if self.typed:
            try:
                value = decode(request, self._request_type)
            except Exception as e:
                raise _BadRequest(f"cannot decode the request: {type(e).__name__}: {e}") from e
            return _items(self._fn(value), encode)
        return _items(self._fn(memoryview(request)), bytes)

    def stream(
        self,
        bus: _tachyon.RpcBus,
        payload: Any,
        timeout: Optional[float] = None,
    ) -> Iterator[Any]:
        """Calls this streaming endpoint through ``bus`` and yields its items (bytes, or
        decoded values for a typed one). ``timeout`` bounds each item. Closing the
        iterator early (``break`` in a ``for`` loop, or ``close()``) cancels the call.

        :raises TachyonRpcError: the server ended the stream with an error.
        :raises TachyonTimeoutError: an item took longer than ``timeout``.
        """
        request = encode(payload) if self.typed else payload
        replies = bus.call_stream(request, self.msg_type, timeout)
        with replies:
            for item in replies:
                yield decode(item, self.response_type) if self.typed else item

    def _response(self, data: bytes, on_response: Optional[Callable[[memoryview], T]]) -> Any:
        if on_response is not None:
            return on_response(memoryview(data))
        if self.typed:
            return decode(data, self.response_type)
        return data

    def call(
        self,
        bus: _tachyon.RpcBus,
        payload: Any,
        on_response: Optional[Callable[[memoryview], T]] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        """Calls this endpoint through ``bus`` (the caller end) and returns the reply:
        bytes for a raw endpoint, the decoded value (or ``response_type`` instance) for a
        typed one, or whatever ``on_response`` makes of the reply's memoryview.

        :raises TachyonRpcError: the callee answered with an error reply.
        :raises TachyonTimeoutError: ``timeout`` seconds passed.
        """
        if self.typed:
            payload = encode(payload)
        # The hot path: one native crossing; the reply comes back as bytes.
        data = bus.invoke(payload, self.msg_type, timeout)
        if on_response is None and not self.typed:
            return data
        return self._response(data, on_response)

    async def call_async(
        self,
        bus: _tachyon.RpcBus,
        payload: Any,
        on_response: Optional[Callable[[memoryview], T]] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        """Awaitable :meth:`call`: the event loop keeps running while the reply comes,
        and many calls may be pending on one bus (they share one reply thread).

        :raises TachyonRpcError: the callee answered with an error reply.
        :raises TachyonTimeoutError: ``timeout`` seconds passed (the call is abandoned).
        """
        request = encode(payload) if self.typed else payload
        if isinstance(bus, _tachyon.TcpClient):
            data = await aio.call_async(bus, request, self.msg_type, timeout)
            return self._response(data, on_response)
        reply = await aio.call_reply(bus, request, self.msg_type, timeout)
        return self._response(reply.data, on_response)

    def __repr__(self) -> str:
        return f"RpcEndpoint(msg_type={self.msg_type}, fn={self.__name__!r})"


def _items(source: Any, convert: Callable[[Any], bytes]) -> Iterator[bytes]:
    """A handler's items as bytes. An ``async`` generator runs on a private event loop
    (the server's native threads have none). Closing this closes the source, so the
    handler's ``finally`` blocks run when the caller cancels."""
    if hasattr(source, "__anext__"):
        yield from _sync_items(source, convert)
        return
    it = iter(source)
    try:
        for item in it:
            yield convert(item)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _sync_items(agen: Any, convert: Callable[[Any], bytes]) -> Iterator[bytes]:
    """Drives an async generator from a thread with no event loop."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                item = loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
            yield convert(item)
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            loop.run_until_complete(aclose())
        loop.close()


def tachyon_rpc(
    msg_type: int,
    *,
    typed: bool = False,
    request_type: Optional[type] = None,
    response_type: Optional[type] = None,
    stream: bool = False,
) -> Callable[[Callable[..., Any]], RpcEndpoint]:
    """Binds a function to ``msg_type`` (0..65534): raw ``memoryview -> bytes`` by default,
    MessagePack values in and out with ``typed=True``; with ``stream=True`` it yields
    any number of items (served by :class:`RpcServer`)."""
    if not 0 <= msg_type < MSG_TYPE_ERROR:
        raise ValueError(f"msg_type must be in [0, {MSG_TYPE_ERROR - 1}], got {msg_type}")

    def decorator(fn: Callable[..., Any]) -> RpcEndpoint:
        return RpcEndpoint(
            fn, msg_type, typed=typed, request_type=request_type, response_type=response_type, stream=stream
        )

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

    def handler(
        self, msg_type: int, *, typed: bool = False, request_type: Optional[type] = None, stream: bool = False
    ) -> Callable[[Callable[..., Any]], RpcEndpoint]:
        """Decorates and registers in one step (``typed=True`` for MessagePack values,
        ``stream=True`` for a handler that yields items)."""

        def decorator(fn: Callable[..., Any]) -> RpcEndpoint:
            ep = RpcEndpoint(fn, msg_type, typed=typed, request_type=request_type, stream=stream)
            self.register(ep)
            return ep

        return decorator

    def serve_once(self, bus: _tachyon.RpcBus, timeout: Optional[float] = None) -> None:
        """Serves one request. An unknown msg_type or a failing handler gets the error
        reply first, so the caller is never left waiting, then raises here.

        :raises KeyError: no handler for the msg_type (after the error reply).
        :raises RuntimeError: the handler raised (after the error reply).
        """
        rx = bus.serve(timeout=timeout, zero_copy=False)
        cid, mt, data = rx.correlation_id, rx.type_id, rx.data
        endpoint = self._endpoint(bus, cid, mt)
        try:
            response = endpoint._handle(memoryview(data))
        except Exception as e:
            self._fail(bus, cid, mt, endpoint, e)
        bus.reply(cid, response, mt)

    def _endpoint(self, bus: _tachyon.RpcBus, cid: int, mt: int) -> RpcEndpoint:
        """The endpoint for ``mt``; an unknown one gets the error reply, then KeyError.
        So does a streaming one: the single-bus loops serve unary calls only."""
        endpoint = self._handlers.get(mt)
        if endpoint is None:
            bus.reply_error(cid, mt, RpcCode.UNKNOWN_MSG_TYPE, f"no handler for msg_type {mt}")
            raise KeyError(f"No handler registered for msg_type={mt} (error reply sent to caller, cid={cid})")
        if endpoint.streaming:
            message = f"{endpoint.__name__!r} streams its replies: serve it with tachyon.RpcServer"
            bus.reply_error(cid, mt, RpcCode.UNSUPPORTED, message)
            raise KeyError(f"{message} (error reply sent to caller, cid={cid})")
        return endpoint

    @staticmethod
    def _fail(bus: _tachyon.RpcBus, cid: int, mt: int, endpoint: RpcEndpoint, e: Exception) -> None:
        """Sends the error reply for a failed handler, then raises RuntimeError."""
        code = int(getattr(e, "rpc_code", RpcCode.HANDLER_ERROR))
        message = str(e) if isinstance(e, _BadRequest) else f"{type(e).__name__}: {e}"
        bus.reply_error(cid, mt, code, message)
        raise RuntimeError(
            f"Handler {endpoint.__name__!r} failed (error reply sent to caller, cid={cid})"
        ) from e

    async def serve_async(self, bus: _tachyon.RpcBus, on_error: Optional[ErrorHook] = None) -> None:
        """Serves requests on the event loop until the caller is gone. Handlers may be
        coroutines (``async def``); the wait for each request runs on the bus's one
        receiver thread, so the loop stays free. A failing handler gets the error reply,
        then ``on_error`` sees the exception (by default it is logged on the ``tachyon``
        logger) and serving goes on.
        """
        while True:
            try:
                req = await aio.serve_requests(bus)
            except (PeerDeadError, BusClosedError):
                return
            try:
                endpoint = self._endpoint(bus, req.correlation_id, req.type_id)
                try:
                    response = await endpoint._handle_async(memoryview(req.data))
                except Exception as e:
                    self._fail(bus, req.correlation_id, req.type_id, endpoint, e)
                bus.reply(req.correlation_id, response, req.type_id)
            except (KeyError, RuntimeError) as e:
                _report(e, on_error)

    def serve_forever(self, bus: _tachyon.RpcBus, on_error: Optional[ErrorHook] = None) -> None:
        """Serves until the caller is gone (``PeerDeadError``), the bus is closed, or
        Ctrl-C. A request that fails gets its error reply, then ``on_error`` sees the
        exception (by default it is logged on the ``tachyon`` logger), and serving goes
        on."""
        # serve_once, unrolled with local names: this loop is the server's hot path. One
        # native call per request: it sends the previous reply and takes the next request.
        handlers = self._handlers
        reply_and_serve = bus.reply_and_serve_raw
        pending = None  # (cid, response, msg_type) of a reply not sent yet
        while True:
            try:
                if pending is None:
                    cid, mt, data = bus.serve_raw()
                else:
                    cid, mt, data = reply_and_serve(*pending)
                    pending = None
            except (KeyboardInterrupt, PeerDeadError, BusClosedError):
                return
            endpoint = handlers.get(mt)
            try:
                if endpoint is None or endpoint.streaming:
                    self._endpoint(bus, cid, mt)  # sends the error reply, raises KeyError
                    continue
                try:
                    if endpoint.typed:
                        response = endpoint._handle(memoryview(data))
                    else:
                        response = endpoint._fn(memoryview(data))
                        if type(response) is not bytes:
                            response = bytes(response)
                except Exception as e:
                    self._fail(bus, cid, mt, endpoint, e)
                pending = (cid, response, mt)
            except (KeyError, RuntimeError) as e:
                _report(e, on_error)
            except (KeyboardInterrupt, PeerDeadError, BusClosedError):
                return


class RpcServer:
    """Many callers on one socket path, each with its own pair of rings and its own
    native thread, served by a dispatcher's handlers (the Rust core's multi-client
    server). A new caller is noticed at once; one over ``max_clients`` is refused.

    Handlers run with the GIL taken by the client's thread; a handler exception becomes
    the error reply (code from its ``rpc_code`` attribute, else ``HANDLER_ERROR``).
    The handlers registered when the server starts are the ones served.

    >>> # with RpcServer("/tmp/svc.sock", dispatcher, max_clients=8) as server:
    >>> #     server.serve_forever()      # until Ctrl-C
    """

    def __init__(
        self,
        socket_path: str,
        dispatcher: RpcDispatcher,
        *,
        cap_fwd: int = 1 << 16,
        cap_rev: int = 1 << 16,
        max_clients: int = 64,
        reply_timeout: Optional[float] = 10.0,
        on_error: Optional[Callable[[int, BaseException], Any]] = None,
        workers: int = 0,
        allow_remote: bool = False,
        insecure: bool = False,
        tls: Optional[TlsOptions] = None,
    ) -> None:
        """``on_error(msg_type, exception)`` sees every handler exception after its error
        reply went out; by default they are logged on the ``tachyon`` logger, as are
        server-side problems (a refused connector, a stalled handshake).

        A ``tcp://host:port`` address serves over TCP instead (port 0 picks one; read it
        back from :attr:`path`): the core's io_uring server, handlers on its reactor
        thread (or on ``workers`` threads). ``tls`` serves TLS 1.3 (mutual TLS when it
        names a ``ca``; handlers then see the caller through
        :func:`tachyon.peer_identity`). Without TLS only loopback may be bound, unless
        ``insecure=True`` (``allow_remote`` is its older name)."""
        eps = dispatcher._handlers.items()
        handlers = {mt: (ep.__name__, ep._serve_bytes) for mt, ep in eps if not ep.streaming}
        streams = {mt: (ep.__name__, ep._stream_bytes) for mt, ep in eps if ep.streaming}
        self._server: Union[_tachyon.RpcServer, _tachyon.TcpRpcServer]
        if socket_path.startswith("tcp://"):
            self._server = _tachyon.TcpRpcServer.start(
                socket_path,
                handlers,
                workers,
                allow_remote or insecure,
                on_error=on_error or _log_handler_failure,
                on_server_error=_log_server_problem,
                streams=streams,
                tls=tls._server() if tls is not None else None,
            )
            return
        if tls is not None:
            raise ValueError("tls= applies to tcp:// addresses; shared memory stays on this machine")
        self._server = _tachyon.RpcServer.start(
            socket_path,
            handlers,
            cap_fwd,
            cap_rev,
            max_clients,
            reply_timeout,
            on_error=on_error or _log_handler_failure,
            on_server_error=_log_server_problem,
            streams=streams,
        )

    @property
    def path(self) -> str:
        """The socket path callers connect to (for TCP, ``tcp://host:port``)."""
        return self._server.path

    @property
    def running(self) -> bool:
        """Whether the server still accepts callers."""
        return self._server.running

    def stats(self) -> ServerStats:
        """Clients accepted, refused and active, requests answered, protocol errors,
        backpressure pauses (TCP), and ``errors``: ``{code: count}`` of the error replies
        sent. Plain ints, readable after :meth:`stop` too."""
        return self._server.stats()

    def serve_forever(self, timeout: Optional[float] = None) -> None:
        """Blocks until Ctrl-C, SIGTERM or ``timeout`` seconds, then stops the server
        (which removes its socket). SIGTERM is caught only while this runs, and only in
        the main thread (where Python delivers signals); the previous handler is put
        back afterwards."""
        deadline = None if timeout is None else time.monotonic() + timeout
        terminated = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: terminated.set())
        try:
            while self._server.running and not terminated.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                terminated.wait(0.05)
        except KeyboardInterrupt:
            pass
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            self.stop()

    def stop(self) -> None:
        """Stops accepting, ends every client's session and waits for them. Idempotent."""
        self._server.stop()

    def __enter__(self) -> "RpcServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connect(
    address: str,
    *,
    timeout: Optional[float] = None,
    connections: int = 1,
    tls: Optional[TlsOptions] = None,
) -> Union[_tachyon.RpcBus, _tachyon.TcpClient]:
    """The caller end for ``address``: a :class:`TcpClient` for ``tcp://host:port``, an
    :class:`RpcBus` for a socket path (``unix://path`` or a plain path). Both have
    ``call``, ``wait``, ``invoke`` and ``notify``, so endpoints and generated clients
    work over either. ``tls`` connects over TLS 1.3 (TCP only)."""
    if address.startswith("tcp://"):
        return _tachyon.TcpClient.connect(
            address, timeout, connections, tls._client() if tls is not None else None
        )
    if tls is not None:
        raise ValueError("tls= applies to tcp:// addresses; shared memory stays on this machine")
    path = address[len("unix://"):] if address.startswith("unix://") else address
    return _tachyon.RpcBus.connect(path, timeout)


async def connect_async(
    address: str,
    *,
    timeout: Optional[float] = None,
    connections: int = 1,
    tls: Optional[TlsOptions] = None,
) -> Union[_tachyon.RpcBus, _tachyon.TcpClient]:
    """:func:`connect` without blocking the event loop: the handshakes (and TLS) run on
    the loop's default executor. Cancelling the await gives up at once; a connection
    that completes after that is closed. ``timeout`` bounds the connect as in
    :func:`connect`.

    >>> # client = await tachyon.connect_async("tcp://10.0.0.7:7000", timeout=5)
    """
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(
        None, lambda: connect(address, timeout=timeout, connections=connections, tls=tls)
    )
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        pending.add_done_callback(_close_late)
        raise


def _close_late(done: "asyncio.Future[Any]") -> None:
    """Closes a connection whose awaiter gave up before it was made."""
    if not done.cancelled() and done.exception() is None:
        close = getattr(done.result(), "close", None)
        if close is not None:
            close()
