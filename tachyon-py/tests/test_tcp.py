"""RPC over TCP from Python (loopback): `tachyon.connect("tcp://...")` against the Rust
`TcpServer` and a Node `createRpcServer`, and `tachyon.RpcServer("tcp://...")` serving
Rust and Node clients, with typed payloads and error replies."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

import tachyon
from helpers import ROOT

ADD = tachyon.RpcEndpoint(lambda r: r, msg_type=2, typed=True)
FAIL = tachyon.RpcEndpoint(lambda r: r, msg_type=3, typed=True)


def _rust_server(peer_bin: Path) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([str(peer_bin), "tcp-serve", "--addr", "tcp://127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline().split()
    assert line[0] == "ready", line
    return p, line[1]


def test_python_client_calls_the_rust_tcp_server(peer_bin: Path) -> None:
    server, address = _rust_server(peer_bin)
    try:
        client = tachyon.connect(address, timeout=5)
        assert isinstance(client, tachyon.TcpClient)
        assert client.invoke(b"over tcp", 1, 5) == b"over tcp"
        assert ADD.call(client, {"a": 40, "b": 2}, timeout=5) == {"sum": 42}
        with pytest.raises(tachyon.TachyonRpcError) as e:
            FAIL.call(client, "because", timeout=5)
        assert e.value.code == 2 and "failing on purpose: because" in str(e.value)
        with pytest.raises(tachyon.TachyonRpcError) as e:
            client.invoke(b"", 999, 5)
        assert e.value.code == tachyon.RpcCode.UNKNOWN_MSG_TYPE

        async def many() -> list[object]:
            return await asyncio.gather(*(ADD.call_async(client, {"a": i, "b": 1}, timeout=5) for i in range(20)))

        assert asyncio.run(many()) == [{"sum": i + 1} for i in range(20)]
        cids = [client.call(str(i).encode(), 1, 5) for i in range(16)]
        assert [client.wait(c, 5) for c in cids] == [str(i).encode() for i in range(16)]
    finally:
        server.kill()
        server.wait()


def _dispatcher() -> tachyon.RpcDispatcher:
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    @d.handler(2, typed=True)
    def add(req: dict) -> dict:
        return {"sum": req["a"] + req["b"]}

    class Refused(Exception):
        rpc_code = 418

    @d.handler(3, typed=True)
    def fail(req: str) -> None:
        raise Refused(f"no: {req}")

    return d


def test_rust_and_node_clients_call_a_python_tcp_server(peer_bin: Path) -> None:
    with tachyon.RpcServer("tcp://127.0.0.1:0", _dispatcher(), on_error=lambda mt, e: None) as server:
        assert server.path.startswith("tcp://127.0.0.1:") and not server.path.endswith(":0")
        r = subprocess.run(
            [str(peer_bin), "tcp-call", "--addr", server.path, "--count", "2000", "--pipeline", "8"],
            capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "rpc-error msg_type=999 code=1" in r.stdout and "ok 2000 messages" in r.stdout
        node = subprocess.run(["node", "-e", textwrap.dedent(f"""
            const t = require({json.dumps(str(ROOT / "tachyon-node"))});
            (async () => {{
              const c = t.RpcClient.connect({json.dumps(server.path)}, {{ timeoutMs: 5000 }});
              const echo = await c.callAsync('from node', 1, {{ timeoutMs: 5000 }});
              const sync = c.invoke('sync', 1, {{ timeoutMs: 5000 }});
              let code = null;
              try {{ await c.callAsync(Buffer.from([0xa1, 0x78]), 3, {{ timeoutMs: 5000 }}); }} catch (e) {{ code = e.rpcCode; }}
              console.log(echo.toString(), sync.toString(), code);
            }})().catch((e) => {{ console.error(e); process.exit(1); }});
        """)], capture_output=True, text=True, timeout=60)
        assert node.returncode == 0, node.stderr
        assert node.stdout.strip() == "from node sync 418"


def test_python_client_calls_a_node_tcp_server() -> None:
    node = subprocess.Popen(["node", "-e", textwrap.dedent(f"""
        const t = require({json.dumps(str(ROOT / "tachyon-node"))});
        const srv = t.createRpcServer({{
          address: 'tcp://127.0.0.1:0',
          onError: () => {{}},
          handlers: {{
            1: (data) => data,
            7: async (data) => Buffer.from(`node:${{data}}`),
            8: () => {{ const e = new Error('refused by node'); e.rpcCode = 451; throw e; }},
          }},
        }});
        console.log(srv.address);
        process.on('SIGTERM', () => srv.close().then(() => process.exit(0)));
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        address = node.stdout.readline().strip()
        assert address.startswith("tcp://"), address
        client = tachyon.connect(address, timeout=5)
        assert client.invoke(b"py", 1, 5) == b"py"
        assert client.invoke(b"hello", 7, 5) == b"node:hello"
        with pytest.raises(tachyon.TachyonRpcError) as e:
            client.invoke(b"", 8, 5)
        assert e.value.code == 451 and "refused by node" in str(e.value)
    finally:
        node.terminate()
        node.wait(timeout=10)
