"""The Python caller of the RPC demo: calls the Rust quote service (`examples/src/lib.rs`)
through the client generated from `schemas/quote.tachyon`, and prints what it measured.

    python quote_client.py /tmp/socket-of-rpc_demo-server
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import tachyon


# The generated module of schemas/quote.tachyon (python -m tachyon.codegen schemas -o
# examples/generated/python), checked in beside this example.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generated" / "python"))
import quote as q  # noqa: E402


def connect(path: str) -> tachyon.RpcBus:
    deadline = time.monotonic() + 10
    while True:
        try:
            return tachyon.RpcBus.connect(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def measure(label: str, call: object, n: int = 20_000) -> int:
    assert callable(call)
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    p50, p99 = samples[n // 2], samples[int(n * 0.99)]
    print(f"  {label:<34} p50 {p50:>6} ns   p99 {p99:>6} ns   ({n} calls)")
    return p50


async def pipelined(client: q.QuotesClient, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n // 16):
        await asyncio.gather(*(client.echo_async(b"x" * 32) for _ in range(16)))
    return (n // 16) * 16 / (time.perf_counter() - t)


def main(path: str) -> None:
    with connect(path) as bus:
        client = q.QuotesClient(bus, timeout=5)
        client.verify()
        print(f"python caller: client.verify()       -> the server serves quote.Quotes {q.FINGERPRINT}")
        req = q.QuoteReq(symbol="TCHY", qty=100)
        got = client.quote(req)
        print(f"python caller: client.quote(TCHY x100) -> {got.symbol} bid {got.bid:.2f} ask {got.ask:.2f}")
        try:
            client.quote(q.QuoteReq(symbol="", qty=0))
        except tachyon.TachyonRpcError as e:
            assert e.code == q.QuotesError.BAD_ORDER
            print(f"  client.quote(bad request)          -> TachyonRpcError(code {e.code}): {e.message}")
        print("round trips from Python (the Rust server in another process):")
        payload = b"x" * 32
        raw = measure("client.echo, 32 raw bytes", lambda: client.echo(payload))
        typed = measure("client.quote, typed (msgspec)", lambda: client.quote(req))
        print(f"  typed/raw p50                      {typed / raw:.2f}x")
        rate = asyncio.run(pipelined(client, 20_000))
        print(f"  asyncio echo_async, 16 in flight      {rate / 1e3:.1f} k calls/s")


if __name__ == "__main__":
    main(sys.argv[1])
