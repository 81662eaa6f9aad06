"""Python RPC over TCP: tachyon's client and server against grpcio's (generated stubs,
same 32-byte payload), side by side in one run.

    python py_bench.py [--rounds R] [--seconds S] [--samples N] [--tls-dir DIR]

Latency: unary round trips on one connection, client and server pinned to CPU 0 (a
wake-up across vCPUs adds 50 to 70 us on this VM). Throughput: 64 connections with 8
calls in flight each, client on CPU 0, server on CPU 1. Rounds alternate the two
stacks; medians are printed. Not a test: `make bench-grpc` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAYLOAD = b"\x07" * 32
# Calls in flight per connection. grpcio's asyncio client fails calls with CANCELLED at 16
# in flight on each of 64 channels here, so both stacks run 8.
DEPTH = 8


def stubs(into: Path) -> None:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={into}", f"--grpc_python_out={into}", str(HERE / "echo.proto")])
    if rc != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, str(into))


def serve(kind: str) -> None:
    if kind == "tachyon":
        import tachyon

        d = tachyon.RpcDispatcher()

        @d.handler(1)
        def echo(req: memoryview) -> bytes:
            return req.tobytes()

        with tachyon.RpcServer("tcp://127.0.0.1:0", d) as server:
            print("ready", server.path.rsplit(":", 1)[1], flush=True)
            server.serve_forever()
        return

    import grpc  # type: ignore[import-untyped]
    import echo_pb2
    import echo_pb2_grpc

    class Echo(echo_pb2_grpc.EchoServicer):  # type: ignore[misc]
        async def Echo(self, request: Any, context: Any) -> Any:
            return echo_pb2.Blob(data=request.data)

    async def main() -> None:
        server = grpc.aio.server()
        echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print("ready", port, flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def start(kind: str, cpu: int, stub_dir: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub_dir), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, __file__, "serve", kind, str(stub_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    line = p.stdout.readline().split()
    assert line and line[0] == "ready", line
    return p, int(line[1])


def latency(kind: str, port: int, samples: int) -> tuple[float, float]:
    times = []
    if kind == "tachyon":
        import tachyon

        c = tachyon.connect(f"tcp://127.0.0.1:{port}")
        call = lambda: c.invoke(PAYLOAD, 1, 10)  # noqa: E731
    else:
        import grpc
        import echo_pb2
        import echo_pb2_grpc

        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = echo_pb2_grpc.EchoStub(ch)
        msg = echo_pb2.Blob(data=PAYLOAD)
        call = lambda: stub.Echo(msg)  # noqa: E731
    for i in range(samples + samples // 10):
        t = time.perf_counter_ns()
        call()
        if i >= samples // 10:
            times.append(time.perf_counter_ns() - t)
    times.sort()
    return times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000


def throughput(kind: str, port: int, seconds: float) -> float:
    if kind == "tachyon":
        import tachyon

        c = tachyon.connect(f"tcp://127.0.0.1:{port}", connections=64)

        def run(until: float) -> int:
            n = 0
            while time.perf_counter() < until:
                cids = [c.call(PAYLOAD, 1, 10) for _ in range(64 * DEPTH)]
                for cid in cids:
                    c.wait(cid, 10)
                n += len(cids)
            return n

        run(time.perf_counter() + 0.3)
        t = time.perf_counter()
        n = run(t + seconds)
        return n / (time.perf_counter() - t)

    import grpc
    import echo_pb2
    import echo_pb2_grpc

    async def main() -> float:
        # One connection per channel (no shared subchannel pool).
        opts = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts) for _ in range(64)]
        stubs_ = [echo_pb2_grpc.EchoStub(ch) for ch in channels]
        msg = echo_pb2.Blob(data=PAYLOAD)

        async def worker(stub: Any, until: float) -> int:
            n = 0
            while time.perf_counter() < until:
                await stub.Echo(msg)
                n += 1
            return n

        async def run(until: float) -> int:
            counts = await asyncio.gather(*(worker(s, until) for s in stubs_ for _ in range(DEPTH)))
            return sum(counts)

        await run(time.perf_counter() + 0.3)
        t = time.perf_counter()
        n = await run(t + seconds)
        rate = n / (time.perf_counter() - t)
        for ch in channels:
            await ch.close()
        return rate

    return asyncio.run(main())


def measure(what: str, kind: str, port: int, arg: float, stub_dir: Path) -> list[float]:
    """Runs one client measurement in a fresh interpreter pinned to CPU 0 (grpcio's sync
    and asyncio stacks do not share a process well)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub_dir), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, __file__, "client", what, kind, str(port), str(arg)],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.split()
    return [float(x) for x in out]


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        sys.path.insert(0, sys.argv[3])
        serve(sys.argv[2])
        return
    if sys.argv[1:2] == ["client"]:
        what, kind, port, arg = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        if what == "latency":
            print(*latency(kind, port, int(arg)))
        else:
            print(throughput(kind, port, arg))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--samples", type=int, default=5000)
    a = ap.parse_args()
    stub_dir = Path(tempfile.mkdtemp(prefix="grpc-stubs-"))
    stubs(stub_dir)
    kinds = ["tachyon", "grpcio"]
    rows: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": [], "tput": []} for k in kinds}
    for _ in range(a.rounds):
        for k in kinds:
            p, port = start(k, 0, stub_dir)
            try:
                p50, p99 = measure("latency", k, port, a.samples, stub_dir)
            finally:
                p.kill()
                p.wait()
            p, port = start(k, 1, stub_dir)
            try:
                (tput,) = measure("throughput", k, port, a.seconds, stub_dir)
            finally:
                p.kill()
                p.wait()
            rows[k]["p50"].append(p50)
            rows[k]["p99"].append(p99)
            rows[k]["tput"].append(tput)
    print(f"Python, unary echo of {len(PAYLOAD)} bytes over loopback TCP. Latency: one connection, client and server on CPU 0. "
          f"Throughput: 64 connections x {DEPTH} in flight, client on CPU 0, server on CPU 1. {a.rounds} rounds, medians.")
    print(f"{'':<10} {'p50 us':>9} {'p99 us':>9} {'calls/s':>10}")
    med = {k: {m: statistics.median(v) for m, v in rows[k].items()} for k in kinds}
    for k in kinds:
        print(f"{k:<10} {med[k]['p50']:>9.1f} {med[k]['p99']:>9.1f} {med[k]['tput']:>10.0f}")
    print(f"tachyon/grpcio: p50 {med['tachyon']['p50'] / med['grpcio']['p50']:.2f}x (target <= 0.2x), "
          f"throughput {med['tachyon']['tput'] / med['grpcio']['tput']:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
