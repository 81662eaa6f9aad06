"""The Python side of the network-namespace tests.

    python py_peer.py serve ADDR [TLS_DIR]      serve echo (1), add (2), caller (7); prints "ready ADDR"
    python py_peer.py call ADDR [TLS_DIR [WHO]]  call them; prints "ok caller=<name>"

WHO picks the client certificate from TLS_DIR: client (default), rogue or none.
"""

from __future__ import annotations

import sys
from typing import Optional

import tachyon

ADD = tachyon.RpcEndpoint(lambda r: r, msg_type=2, typed=True)
CALLER = tachyon.RpcEndpoint(lambda r: r, msg_type=7, typed=True)


def tls_for(tls_dir: Optional[str], who: str, server: bool) -> Optional[tachyon.TlsOptions]:
    if tls_dir is None:
        return None
    if server:
        return tachyon.TlsOptions(ca=f"{tls_dir}/ca.pem", cert=f"{tls_dir}/server.pem", key=f"{tls_dir}/server.key")
    if who == "none":
        return tachyon.TlsOptions(ca=f"{tls_dir}/ca.pem")
    return tachyon.TlsOptions(ca=f"{tls_dir}/ca.pem", cert=f"{tls_dir}/{who}.pem", key=f"{tls_dir}/{who}.key")


def serve(address: str, tls_dir: Optional[str]) -> None:
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    @d.handler(2, typed=True)
    def add(req: dict[str, int]) -> dict[str, int]:
        return {"sum": req["a"] + req["b"]}

    @d.handler(7, typed=True)
    def caller(req: object) -> str:
        peer = tachyon.peer_identity()
        return (peer.name or "") if peer is not None else ""

    tls = tls_for(tls_dir, "", server=True)
    with tachyon.RpcServer(address, d, tls=tls, insecure=tls is None, workers=2) as server:
        print("ready", server.path, flush=True)
        server.serve_forever()


def call(address: str, tls_dir: Optional[str], who: str) -> None:
    client = tachyon.connect(address, timeout=10, tls=tls_for(tls_dir, who, server=False))
    payload = bytes(range(256)) * 64
    for _ in range(200):
        assert client.invoke(payload, 1, 10) == payload
    assert ADD.call(client, {"a": 40, "b": 2}, timeout=10) == {"sum": 42}
    try:
        client.invoke(b"", 999, 10)
        raise AssertionError("an unknown msg_type was answered")
    except tachyon.TachyonRpcError as e:
        assert e.code == 1, e
    print(f"ok caller={CALLER.call(client, None, timeout=10)}", flush=True)


if __name__ == "__main__":
    role, address, *rest = sys.argv[1:]
    tls_dir = rest[0] if rest else None
    try:
        if role == "serve":
            serve(address, tls_dir)
        else:
            call(address, tls_dir, rest[1] if len(rest) > 1 else "client")
    except tachyon.TachyonTlsError as e:
        print(f"tls-error: {e}", flush=True)
        sys.exit(3)
