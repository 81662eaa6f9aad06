"""The Python caller of the RPC demo: calls the Rust `#[tachyon_rpc]` quote service
(`examples/src/lib.rs`) by msg_type, with typed MessagePack payloads, and prints what it
measured.

    python quote_client.py /tmp/socket-of-rpc_demo-server
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time

import tachyon


@dataclasses.dataclass
class QuoteReq:
    symbol: str
    qty: int


@dataclasses.dataclass
class Quote:
    symbol: str
    bid: float
    ask: float
    qty: int


# The Rust handlers' msg_types: quote = 1 (typed), echo = 2 (raw bytes).
quote = tachyon.RpcEndpoint(lambda req: req, msg_type=1, typed=True, response_type=Quote)
echo = tachyon.RpcEndpoint(lambda mv: mv.tobytes(), msg_type=2)


def connect(path: str) -> tachyon.RpcBus:
    deadline = time.monotonic() + 10
    while True:
        try:
            return tachyon.RpcBus.connect(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def measure(label: str, call: object, n: int = 20_000) -> None:
    assert callable(call)
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    p50, p99 = samples[n // 2], samples[int(n * 0.99)]
    print(f"  {label:<34} p50 {p50:>6} ns   p99 {p99:>6} ns   ({n} calls)")


async def pipelined(bus: tachyon.RpcBus, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n // 16):
        await asyncio.gather(*(echo.call_async(bus, b"x" * 32, timeout=5) for _ in range(16)))
    return (n // 16) * 16 / (time.perf_counter() - t)


def main(path: str) -> None:
    with connect(path) as bus:
        q: Quote = quote.call(bus, QuoteReq("TCHY", 100), timeout=5)
        print(f"python caller: quote.call(TCHY x100)  -> {q.symbol} bid {q.bid:.2f} ask {q.ask:.2f}")
        try:
            quote.call(bus, QuoteReq("", 0), timeout=5)
        except tachyon.TachyonRpcError as e:
            print(f"  quote.call(bad request)            -> TachyonRpcError(code {e.code}): {e.message}")
        print("round trips from Python (the Rust server in another process):")
        payload = b"x" * 32
        measure("echo.call, 32 raw bytes", lambda: echo.call(bus, payload))
        measure("quote.call, typed MessagePack", lambda: quote.call(bus, QuoteReq("TCHY", 100)))
        rate = asyncio.run(pipelined(bus, 20_000))
        print(f"  asyncio call_async, 16 in flight      {rate / 1e3:.1f} k calls/s")


if __name__ == "__main__":
    main(sys.argv[1])
