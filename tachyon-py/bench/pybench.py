"""Python-to-Python benchmark: our `tachyon` package against upstream's `tachyon-ipc`,
side by side in one run, rounds interleaved (ours, upstream, ours, ...).

Both packages import as `tachyon`, so each runs in its own venv: this script starts
worker processes of this same file under each venv's Python.

    python pybench.py --ours .venv/bin/python --upstream .venv-upstream/bin/python \
        [--peer target/release/tachyon-peer]

Every server runs on CPU 1 and every client on CPU 0 (through `taskset`). With `--peer`,
the same RPC echo runs Rust to Rust (`tachyon-peer rpc-serve` / `rpc-bench`) in each
round, for the bindings' overhead ratio.

Scenarios (two processes each):
  stream    32-byte messages, `send` in one process, `drain_batch` in the other: msg/s
  pingpong  a 32-byte message there and back over two buses: round trip p50/p99
  rpc       echo through the decorator API (`RpcEndpoint.call` / `RpcDispatcher`): p50/p99
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

PAYLOAD = b"x" * 32


# ---- workers (run under one package's venv) ----------------------------------------


def _connect(factory, path: str):
    deadline = time.monotonic() + 30
    while True:
        try:
            return factory(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def _send(tachyon, bus, data: bytes) -> None:
    while True:
        try:
            bus.send(data, 1)
            return
        except tachyon.PeerDeadError:
            raise
        except tachyon.TachyonError:  # upstream raises on a full ring instead of waiting
            pass


def worker(args) -> dict:
    import tachyon

    p1, p2 = args.path + ".a", args.path + ".b"
    if args.scenario == "stream":
        if args.role == "server":
            with tachyon.Bus.listen(p1, 1 << 20) as bus:
                n, t0 = 0, None
                while n < args.count:
                    with bus.drain_batch(1024, 10000) as batch:
                        if t0 is None:
                            t0 = time.perf_counter()
                        for m in batch:
                            n += 1 if len(memoryview(m)) == 32 else 0
                dt = time.perf_counter() - t0
            return {"rate": n / dt}
        with _connect(tachyon.Bus.connect, p1) as bus:
            for _ in range(args.count):
                _send(tachyon, bus, PAYLOAD)
            time.sleep(0.5)
        return {}
    if args.scenario == "pingpong":
        if args.role == "server":
            with tachyon.Bus.listen(p1, 1 << 16) as rx:
                with _connect(tachyon.Bus.connect, p2) as tx:
                    for msg in rx:
                        if len(msg.data) == 0:  # the client is done
                            break
                        _send(tachyon, tx, msg.data)
            return {}
        with _connect(tachyon.Bus.connect, p1) as tx:
            with tachyon.Bus.listen(p2, 1 << 16) as rx:
                it = iter(rx)
                samples = []
                for i in range(args.warmup + args.count):
                    t = time.perf_counter_ns()
                    _send(tachyon, tx, PAYLOAD)
                    next(it)
                    if i >= args.warmup:
                        samples.append(time.perf_counter_ns() - t)
                _send(tachyon, tx, b"")
        return _percentiles(samples)
    if args.scenario == "rpc":
        if args.role == "server":
            d = tachyon.RpcDispatcher()

            @d.handler(1)
            def echo(req: memoryview) -> bytes:
                return req.tobytes()

            with tachyon.RpcBus.rpc_listen(p1, 1 << 16, 1 << 16) as bus:
                try:
                    d.serve_forever(bus)
                except Exception:  # upstream ends with its own error when the caller leaves
                    pass
            return {}
        ep = tachyon.RpcEndpoint(lambda mv: mv.tobytes(), msg_type=1)
        with _connect(tachyon.RpcBus.rpc_connect, p1) as bus:
            samples = []
            for i in range(args.warmup + args.count):
                t = time.perf_counter_ns()
                ep.call(bus, PAYLOAD)
                if i >= args.warmup:
                    samples.append(time.perf_counter_ns() - t)
        return _percentiles(samples)
    raise SystemExit(f"unknown scenario {args.scenario}")


def _percentiles(samples: list[int]) -> dict:
    s = sorted(samples)
    return {"p50": s[len(s) // 2], "p99": s[int(len(s) * 0.99)]}


# ---- driver ------------------------------------------------------------------------


def run(python: str, scenario: str, count: int, warmup: int) -> dict:
    path = f"/tmp/pybench-{uuid.uuid4().hex[:10]}"
    common = ["--scenario", scenario, "--path", path, "--count", str(count), "--warmup", str(warmup)]
    me = str(Path(__file__).resolve())
    server = subprocess.Popen(["taskset", "-c", "1", python, me, "worker", "--role", "server", *common],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = subprocess.Popen(["taskset", "-c", "0", python, me, "worker", "--role", "client", *common],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    c_out, c_err = client.communicate(timeout=600)
    try:
        # Upstream's RPC server has no liveness link: it would wait for ever.
        s_out, s_err = server.communicate(timeout=10 if scenario == "stream" else 1)
    except subprocess.TimeoutExpired:
        server.kill()
        s_out, s_err = server.communicate()
    out = (s_out if scenario == "stream" else c_out).strip().splitlines()
    if not out:
        raise RuntimeError(f"{python} {scenario} failed:\n{c_err}\n{s_err}")
    return json.loads(out[-1])


def rust_to_rust(peer: str, count: int) -> dict:
    """RPC echo between two tachyon-peer processes, placed as the Python rows are."""
    path = f"/tmp/pybench-{uuid.uuid4().hex[:10]}.rr"
    server = subprocess.Popen(["taskset", "-c", "1", peer, "rpc-serve", "--path", path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        out = subprocess.run(["taskset", "-c", "0", peer, "rpc-bench", "--path", path, "--count", str(count)],
                             capture_output=True, text=True, timeout=600, check=True).stdout
    finally:
        server.kill()
        server.communicate()
    fields = dict(kv.split("=") for kv in out.split("\n")[0].split()[1:])
    return {"p50": int(fields["p50"]), "p99": int(fields["p99"])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="drive")
    p.add_argument("--ours", default=".venv/bin/python")
    p.add_argument("--upstream", default=".venv-upstream/bin/python")
    p.add_argument("--peer", default=None, help="tachyon-peer, for the Rust-to-Rust row")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stream", type=int, default=500_000)
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--role")
    p.add_argument("--scenario")
    p.add_argument("--path")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--warmup", type=int, default=2000)
    args = p.parse_args()
    if args.mode == "worker":
        print(json.dumps(worker(args)), flush=True)
        return

    impls = {"ours": args.ours, "upstream": args.upstream}
    results: dict[str, dict[str, list[dict]]] = {k: {} for k in impls}
    rust: list[dict] = []
    for r in range(args.rounds):
        for scenario, count in [("stream", args.stream), ("pingpong", args.samples), ("rpc", args.samples)]:
            for name, python in impls.items():
                res = run(python, scenario, count, 0 if scenario == "stream" else 2000)
                results[name].setdefault(scenario, []).append(res)
        if args.peer:
            rust.append(rust_to_rust(args.peer, args.samples))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def med(name: str, scenario: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name][scenario])

    print(f"Python to Python, {args.rounds} interleaved rounds (median of rounds)")
    print(f"{'':44}{'ours':>14}{'upstream':>14}{'ratio':>9}")
    o, u = med("ours", "stream", "rate"), med("upstream", "stream", "rate")
    print(f"{'streaming 32-byte messages (M msg/s)':44}{o / 1e6:14.2f}{u / 1e6:14.2f}{o / u:9.2f}")
    for scenario, label in [("pingpong", "ping-pong round trip"), ("rpc", "RPC echo (decorator API)")]:
        for q in ("p50", "p99"):
            o, u = med("ours", scenario, q), med("upstream", scenario, q)
            print(f"{label + ' ' + q + ' (ns)':44}{o:14.0f}{u:14.0f}{o / u:9.2f}")
    print("targets: streaming ratio >= 2.0, round-trip ratios <= 0.6")
    if rust:
        r50 = statistics.median(x["p50"] for x in rust)
        o50 = med("ours", "rpc", "p50")
        print(f"{'RPC echo p50, Rust to Rust (ns)':44}{r50:14.0f}")
        print(f"ratio: Python to Python RPC p50 / Rust to Rust = {o50 / r50:.2f} (target <= 2.5)")


if __name__ == "__main__":
    main()
