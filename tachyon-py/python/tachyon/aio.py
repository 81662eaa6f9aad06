"""asyncio support: awaitable receive, call and serve that never block the event loop.

The ring's wait is a futex, which an event loop cannot poll. So each bus gets **one**
pump thread, started when something awaits it and ended when nothing does. The pump
waits on the bus's ``readiness()`` handle in native code with the GIL released and
*without the bus's lock* (so the loop keeps sending and replying meanwhile), in short
slices so it notices when its waiters are gone. Then it takes the message and hands it
to the oldest waiting future through ``loop.call_soon_threadsafe``. Pending calls on an :class:`~tachyon.RpcBus` share that
one thread: it takes replies in whatever order they come (``RpcBus.next_reply``) and
resolves the future waiting for each correlation id. Nothing is lost: a message whose
waiter was cancelled is kept for the next one.

Use either the blocking or the async receive side of one bus, not both at once.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from typing import Any, Callable, Deque, Dict, Generic, Optional, Tuple, TypeVar, Union

from . import _tachyon
from ._errors import BusClosedError, PeerClosedError, PeerDeadError, TachyonRpcError, TachyonTimeoutError

__all__ = ["anext_message", "call_async", "recv_async"]

T = TypeVar("T")
_SLICE = 0.05
"""How long the pump waits in native code before checking whether anyone still waits."""


def _resolve(fut: "asyncio.Future[Any]", value: Any) -> None:
    """On the loop thread: completes ``fut`` unless it was cancelled."""
    if not fut.done():
        fut.set_result(value)


def _resolve_all(done: "list[Tuple[asyncio.Future[Any], Any]]") -> None:
    for fut, value in done:
        _resolve(fut, value)


def _fail(fut: "asyncio.Future[Any]", error: BaseException) -> None:
    if not fut.done():
        fut.set_exception(error)


class _MessagePump(Generic[T]):
    """One thread that receives for every ``await`` on one bus, oldest waiter first."""

    def __init__(self, ready: _tachyon.Readiness, fetch: Callable[[], T]) -> None:
        self._ready_wait = ready.wait
        self._fetch = fetch
        self._lock = threading.Lock()
        self._waiters: Deque[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[T]"]] = collections.deque()
        self._ready: Deque[T] = collections.deque()
        self._running = False

    async def get(self) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._ready:
                return self._ready.popleft()
            self._waiters.append((loop, fut))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="tachyon-aio-recv", daemon=True).start()
        return await fut

    def _deliver(self, item: T) -> None:
        """On the loop thread: the oldest live waiter gets ``item``; with none left (all
        cancelled), it is kept for the next ``get``."""
        with self._lock:
            while self._waiters:
                _, fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_result(item)
                    return
            self._ready.append(item)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._waiters and self._waiters[0][1].done():
                    self._waiters.popleft()
                if not self._waiters:
                    self._running = False
                    return
                loop = self._waiters[0][0]
            try:
                if not self._ready_wait(_SLICE):
                    continue
                item = self._fetch()
            except TachyonTimeoutError:
                continue
            except BaseException as e:  # handed to the awaiting coroutines, which raise it
                with self._lock:
                    self._running = False
                    loops = {id(wloop): wloop for wloop, _ in self._waiters}
                # Queued behind the deliveries already on their way, so every message
                # taken before the error reaches its waiter first.
                for wloop in loops.values():
                    wloop.call_soon_threadsafe(self._fail_waiters, wloop, e)
                return
            loop.call_soon_threadsafe(self._deliver, item)

    def _fail_waiters(self, loop: asyncio.AbstractEventLoop, error: BaseException) -> None:
        """On ``loop``'s thread: fails its waiters still waiting after every delivery
        that was queued before the error."""
        with self._lock:
            mine = [fut for wloop, fut in self._waiters if wloop is loop]
            self._waiters = collections.deque((w, f) for w, f in self._waiters if w is not loop)
        for fut in mine:
            _fail(fut, error)


class _ReplyPump:
    """One thread that takes the replies of every pending call on one RPC bus."""

    def __init__(self, bus: _tachyon.RpcBus) -> None:
        self._bus = weakref.ref(bus)
        self._ready_wait = bus.readiness().wait
        self._lock = threading.Lock()
        self._pending: Dict[int, Tuple[asyncio.AbstractEventLoop, "asyncio.Future[_tachyon.RpcRxGuard]"]] = {}
        # Replies taken before their caller registered (between `call` and `expect`).
        self._early: Dict[int, _tachyon.RpcRxGuard] = {}
        self._running = False

    def expect(self, cid: int) -> "asyncio.Future[_tachyon.RpcRxGuard]":
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_tachyon.RpcRxGuard] = loop.create_future()
        with self._lock:
            early = self._early.pop(cid, None)
            if early is not None:
                fut.set_result(early)
                return fut
            self._pending[cid] = (loop, fut)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="tachyon-aio-replies", daemon=True).start()
        return fut

    def forget(self, cid: int) -> None:
        """The caller gave up on ``cid`` (timeout, cancellation): drop its reply."""
        with self._lock:
            known = self._pending.pop(cid, None) is not None
            self._early.pop(cid, None)
        bus = self._bus()
        if known and bus is not None and not bus.closed:
            bus.abandon(cid)

    def _run(self) -> None:
        while True:
            bus = self._bus()
            with self._lock:
                if not self._pending or bus is None:
                    self._running = False
                    return
            try:
                if not self._ready_wait(_SLICE):
                    continue
                # Take every reply already there, then wake the loop once for all of them.
                replies = [bus.next_reply(timeout=0, zero_copy=False)]
                while bus.in_flight:
                    try:
                        replies.append(bus.next_reply(timeout=0, zero_copy=False))
                    except TachyonTimeoutError:
                        break
            except TachyonTimeoutError:
                continue
            except BaseException as e:
                with self._lock:
                    pending = list(self._pending.values())
                    self._pending.clear()
                    self._running = False
                for loop, fut in pending:
                    loop.call_soon_threadsafe(_fail, fut, e)
                return
            finally:
                del bus
            by_loop: Dict[asyncio.AbstractEventLoop, list[Tuple["asyncio.Future[Any]", Any]]] = {}
            with self._lock:
                for reply in replies:
                    waiter = self._pending.pop(reply.correlation_id, None)
                    if waiter is not None:
                        by_loop.setdefault(waiter[0], []).append((waiter[1], reply))
                    else:  # its caller has sent but not registered yet
                        self._early[reply.correlation_id] = reply
            for loop, done in by_loop.items():
                loop.call_soon_threadsafe(_resolve_all, done)


_pumps: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_pumps_lock = threading.Lock()


def _message_pump(bus: Any, take: str) -> _MessagePump[Any]:
    """The pump of ``bus``, which takes each message with ``bus.<take>(timeout=0)``
    (``recv`` on a Bus, ``serve`` on the callee end of an RpcBus)."""
    with _pumps_lock:
        pump = _pumps.get(bus)
        if pump is None:
            ref = weakref.ref(bus)

            def fetch() -> Any:
                b = ref()
                if b is None:
                    raise PeerDeadError("the bus was garbage-collected")
                if take == "serve":
                    return b.serve(timeout=0, zero_copy=False)
                return getattr(b, take)(timeout=0)

            pump = _pumps[bus] = _MessagePump(bus.readiness(), fetch)
        return pump


def _reply_pump(bus: _tachyon.RpcBus) -> _ReplyPump:
    with _pumps_lock:
        pump = _pumps.get(bus)
        if pump is None:
            pump = _pumps[bus] = _ReplyPump(bus)
        return pump


async def _within(aw: "asyncio.Future[T]", timeout: Optional[float], what: str) -> T:
    if timeout is None:
        return await aw
    try:
        return await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        raise TachyonTimeoutError(f"{what} timed out after {timeout} s") from None


async def recv_async(bus: _tachyon.Bus, timeout: Optional[float] = None) -> _tachyon.Message:
    """Awaits the next message of ``bus`` (``await bus.recv_async()`` calls this)."""
    return await _within(asyncio.ensure_future(_message_pump(bus, "recv").get()), timeout, "recv_async")


async def anext_message(bus: _tachyon.Bus) -> _tachyon.Message:
    """``async for msg in bus``: the next message. Ends once the peer has closed its bus
    and everything it sent was delivered; raises :class:`PeerDeadError` if it died."""
    try:
        msg: _tachyon.Message = await _message_pump(bus, "recv").get()
    except (PeerClosedError, BusClosedError):
        raise StopAsyncIteration from None
    return msg


async def call_reply(
    bus: _tachyon.RpcBus, payload: Union[bytes, bytearray, memoryview], msg_type: int, timeout: Optional[float] = None
) -> _tachyon.RpcRxGuard:
    """Sends a request and awaits its reply message. An error reply raises
    :class:`TachyonRpcError`; a timeout abandons the call."""
    cid = bus.call(payload, msg_type, timeout=timeout)
    pump = _reply_pump(bus)
    fut = pump.expect(cid)
    try:
        reply = await _within(fut, timeout, f"call to msg_type {msg_type}")
    except BaseException:
        pump.forget(cid)
        raise
    if reply.type_id == 0xFFFF:
        failed, code, message = _tachyon.decode_error(reply.data)
        raise TachyonRpcError(failed, code, message)
    return reply


async def call_async(
    bus: _tachyon.RpcBus, payload: Union[bytes, bytearray, memoryview], msg_type: int, timeout: Optional[float] = None
) -> bytes:
    """``await rpc.call_async(payload, msg_type)``: the reply's bytes. Over TCP
    (:class:`tachyon.TcpClient`) the wait runs on a worker thread."""
    if isinstance(bus, _tachyon.TcpClient):
        return await asyncio.to_thread(bus.invoke, bytes(payload), msg_type, timeout)
    return (await call_reply(bus, payload, msg_type, timeout)).data


async def serve_requests(bus: _tachyon.RpcBus, timeout: Optional[float] = None) -> _tachyon.RpcRxGuard:
    """Awaits the next request on the callee end of ``bus``."""
    request: _tachyon.RpcRxGuard = await _within(
        asyncio.ensure_future(_message_pump(bus, "serve").get()), timeout, "serve"
    )
    return request
