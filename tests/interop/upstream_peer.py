"""The upstream side of interop tests. Runs under the venv holding `tachyon-ipc==0.5.1`
(upstream's own package, which also imports as `tachyon`).

    python upstream_peer.py produce --path P (--listen CAP | --connect) --count N --seed S --max-size B
    python upstream_peer.py consume --path P (--listen CAP | --connect) --count N --seed S --max-size B
    python upstream_peer.py rpc-listen --path P
    python upstream_peer.py rpc-connect --path P
    python upstream_peer.py rpc-serve --path P --count N    # RpcDispatcher, echo on msg_type 1
    python upstream_peer.py rpc-call --path P --count N     # echo calls, then msg_type 999

Prints ``ok <n> messages`` on success, ``error: <Kind>: <text>`` and exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import tachyon  # upstream's package

from payloads import message

CONNECT_RETRY_S = 20.0
# How long after its socket appears a listener may take to listen.
GRACE_AFTER_BIND_S = 1.0


def connect(factory, path: str):
    """Connects once the listener's socket exists. Until then a connect fails for want of
    a listener; once it exists, a ConnectionError soon is the answer (an ABI mismatch,
    say): upstream raises the same ConnectionError for both, so retries end a moment
    after the socket appears (it may be bound before it listens) instead of after the
    whole retry time."""
    deadline = time.monotonic() + CONNECT_RETRY_S
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    deadline = min(deadline, time.monotonic() + GRACE_AFTER_BIND_S)
    while True:
        try:
            return factory(path)
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def open_bus(args) -> "tachyon.Bus":
    if args.listen:
        return tachyon.Bus.listen(args.path, args.listen)
    return connect(tachyon.Bus.connect, args.path)


def produce(args) -> int:
    with open_bus(args) as bus:
        for i in range(args.count):
            data, type_id = message(args.seed, i, args.max_size)
            while True:
                try:
                    bus.send(data, type_id)
                    break
                except tachyon.PeerDeadError:
                    raise
                except tachyon.TachyonError:  # ring full: upstream does not wait
                    time.sleep(0)
        time.sleep(args.linger)
    return args.count


def consume(args) -> int:
    n = 0
    with open_bus(args) as bus:
        if args.count == 0:
            return 0
        for msg in bus:
            data, type_id = message(args.seed, n, args.max_size)
            if msg.data != data or msg.type_id != type_id:
                raise AssertionError(
                    f"message {n}: got {len(msg.data)} bytes type {msg.type_id:#x}, "
                    f"expected {len(data)} bytes type {type_id:#x}"
                )
            n += 1
            if n == args.count:
                break
    return n


def rpc_serve(args) -> int:
    """Upstream's own dispatcher: echo on msg_type 1; anything else gets its 0xFFFF reply."""
    dispatcher = tachyon.RpcDispatcher()

    @dispatcher.handler(1)
    def echo(payload: memoryview) -> bytes:
        return payload.tobytes()

    served = 0
    with tachyon.RpcBus.rpc_listen(args.path, 1 << 16, 1 << 16) as bus:
        while served < args.count:
            try:
                dispatcher.serve_once(bus)
            except KeyError:
                pass  # unknown msg_type: upstream replied 0xFFFF first, then raised
            served += 1
        time.sleep(args.linger)
    return served


def rpc_call(args) -> int:
    """Upstream's caller against our server: echoes, then an unknown msg_type, whose
    0xFFFF reply must still be readable by upstream's `_decode_error`."""
    from tachyon.rpc_decorator import _decode_error

    echo = tachyon.RpcEndpoint(lambda mv: mv.tobytes(), msg_type=1)
    with connect(tachyon.RpcBus.rpc_connect, args.path) as bus:
        for i in range(args.count):
            data, _ = message(args.seed, i, args.max_size)
            data = data or b"\x00"  # upstream refuses zero-length calls
            got = echo.call(bus, data)
            if got != data:
                raise AssertionError(f"echo {i}: {len(got)} bytes back for {len(data)}")
        cid = bus.call(b"anyone?", msg_type=999)
        with bus.wait(cid) as rx:
            with memoryview(rx) as mv:
                payload = mv.tobytes()
            type_id = rx.type_id
        print(f"error-reply type_id={type_id:#06x} failed_msg_type={_decode_error(payload)} bytes={len(payload)}")
    return args.count


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role")
    p.add_argument("--path", required=True)
    p.add_argument("--listen", type=int, default=0)
    p.add_argument("--connect", action="store_true")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-size", type=int, default=4096)
    p.add_argument("--linger", type=float, default=0.5)
    args = p.parse_args()
    try:
        if args.role == "produce":
            n = produce(args)
        elif args.role == "consume":
            n = consume(args)
        elif args.role == "rpc-listen":
            with tachyon.RpcBus.rpc_listen(args.path, 4096, 4096):
                n = 0
        elif args.role == "rpc-serve":
            n = rpc_serve(args)
        elif args.role == "rpc-call":
            n = rpc_call(args)
        elif args.role == "rpc-connect":
            with connect(tachyon.RpcBus.rpc_connect, args.path):
                n = 0
        else:
            raise SystemExit(f"unknown role {args.role}")
    except Exception as e:  # report the kind for the test to check
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"ok {n} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
