"""Server-streaming calls from Python: `@tachyon_rpc(stream=True)` handlers served by
`tachyon.RpcServer` (generators and async generators), read with `RpcEndpoint.stream`
and `RpcBus.call_stream`; cancellation reaches the handler's `finally`."""

from __future__ import annotations

import threading
import time
from typing import AsyncIterator, Iterator

import pytest

import tachyon
from tachyon.rpc import decode, encode


class Gauge:
    """What the streaming handlers did, seen from the test."""

    def __init__(self) -> None:
        self.sent = 0
        self.closed = 0
        self.lock = threading.Lock()


def dispatcher(g: Gauge) -> tachyon.RpcDispatcher:
    d = tachyon.RpcDispatcher()

    @d.handler(5, typed=True, stream=True)
    def count(n: int) -> Iterator[int]:
        try:
            for i in range(n):
                with g.lock:
                    g.sent += 1
                yield i
        finally:
            with g.lock:
                g.closed += 1

    @d.handler(6, stream=True)
    async def letters(req: memoryview) -> AsyncIterator[bytes]:
        for b in bytes(req):
            yield bytes([b])

    class Teapot(Exception):
        rpc_code = 418

    @d.handler(7, typed=True, stream=True)
    def fail_after(n: int) -> Iterator[int]:
        yield from range(n)
        raise Teapot("short and stout")

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    return d


@pytest.fixture
def served(sock_path: str) -> Iterator[tuple[tachyon.RpcDispatcher, tachyon.RpcBus, Gauge]]:
    g = Gauge()
    d = dispatcher(g)
    with tachyon.RpcServer(sock_path, d, on_error=lambda mt, e: None):
        with tachyon.RpcBus.connect(sock_path) as bus:
            yield d, bus, g


def test_ten_thousand_typed_items_in_order(served: tuple[tachyon.RpcDispatcher, tachyon.RpcBus, Gauge]) -> None:
    d, bus, _ = served
    got = list(d._handlers[5].stream(bus, 10_000, timeout=10))
    assert got == list(range(10_000))
    assert bus.in_flight == 0
    assert list(d._handlers[5].stream(bus, 0, timeout=10)) == []


def test_async_generator_handlers_stream_raw_items(served: tuple[tachyon.RpcDispatcher, tachyon.RpcBus, Gauge]) -> None:
    d, bus, _ = served
    assert list(d._handlers[6].stream(bus, b"abc", timeout=10)) == [b"a", b"b", b"c"]


def test_an_exception_ends_the_stream_with_its_code(served: tuple[tachyon.RpcDispatcher, tachyon.RpcBus, Gauge]) -> None:
    d, bus, _ = served
    got = []
    with pytest.raises(tachyon.TachyonRpcError) as e:
        for item in d._handlers[7].stream(bus, 3, timeout=10):
            got.append(item)
    assert got == [0, 1, 2]
    assert e.value.code == 418 and "short and stout" in str(e.value)


def test_cancelling_midway_closes_the_handler_and_frees_the_window(
    served: tuple[tachyon.RpcDispatcher, tachyon.RpcBus, Gauge],
) -> None:
    d, bus, g = served
    for i, item in enumerate(d._handlers[5].stream(bus, 10**9, timeout=10)):
        assert item == i
        if i == 4_999:
            break  # closing the generator cancels the call
    # The bus goes on; the cancelled stream's end arrives while it does.
    deadline = time.monotonic() + 10
    while bus.in_flight:
        assert time.monotonic() < deadline, "the cancelled stream never ended"
        assert bus.invoke(b"x", 1, 10) == b"x"
    deadline = time.monotonic() + 10
    while g.closed < 1:
        assert time.monotonic() < deadline, "the handler's finally never ran"
        time.sleep(0.01)
    sent = g.sent
    assert sent < 1_000_000, f"the handler kept going: {sent} items"
    time.sleep(0.05)
    assert g.sent == sent


def test_the_native_stream_object(served: tuple[tachyon.RpcDispatcher, tachyon.RpcBus, Gauge]) -> None:
    _, bus, _ = served
    with bus.call_stream(encode(3), 5, timeout=10) as s:
        assert isinstance(s, tachyon.ReplyStream) and s.correlation_id > 0
        assert [decode(x) for x in s] == [0, 1, 2]
        assert s.done and s.next() is None
    # `next(timeout)` waits for one item; a stream left early is cancelled on exit.
    with bus.call_stream(encode(10**9), 5, timeout=10) as s:
        assert decode(s.next(timeout=5)) == 0
    assert s.done


def test_single_bus_loops_refuse_streams_clearly(sock_path: str) -> None:
    d = dispatcher(Gauge())
    listener: list[tachyon.RpcBus] = []

    def serve() -> None:
        with tachyon.RpcBus.listen(sock_path, 1 << 16, 1 << 16) as callee:
            listener.append(callee)
            d.serve_forever(callee, on_error=lambda e: None)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    from helpers import connect_rpc_retry

    with connect_rpc_retry(sock_path) as bus:
        with pytest.raises(tachyon.TachyonRpcError) as e:
            list(d._handlers[5].stream(bus, 3, timeout=10))
        assert e.value.code == tachyon.RpcCode.UNSUPPORTED
        assert "tachyon.RpcServer" in str(e.value)
        assert bus.invoke(b"still fine", 1, 10) == b"still fine"
    t.join(10)
