"""Schema-generated code across Rust, Python and Node, over real shared memory and real
processes: drift, located errors, live calls in every direction, the cross-language
conformance chain Rust -> Python -> Node -> Rust, and async handlers."""

from __future__ import annotations

import tempfile

import asyncio
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

import tachyon

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE / "generated"))

import conformance as c  # noqa: E402  (generated: tests/schema/generated/conformance.py)
import feed  # noqa: E402  (generated: tests/schema/generated/feed.py)

CODEGEN_TS = ROOT / "tachyon-node" / "bin" / "tachyon-codegen.js"
OUTPUTS = [
    (ROOT / "tests" / "schemas", HERE / "generated"),
    (ROOT / "tests" / "schemas" / "streaming", HERE / "generated"),
    (ROOT / "schemas", ROOT / "examples" / "generated" / "python"),
    (ROOT / "schemas", ROOT / "examples" / "generated" / "ts"),
]


def test_checked_in_code_is_what_the_generators_write(node_env: dict[str, str]) -> None:
    """Drift: regenerating every checked-in module gives identical bytes, through the
    Python entry point and the Node one."""
    for schemas, out in OUTPUTS:
        for lang in ("python", "typescript"):
            if not any(out.glob("*.py" if lang == "python" else "*.js")):
                continue
            py = subprocess.run(
                [sys.executable, "-m", "tachyon.codegen", str(schemas), "-o", str(out), "--lang", lang, "--check"],
                capture_output=True, text=True,
            )
            assert py.returncode == 0, py.stderr
            js = subprocess.run(
                ["node", str(CODEGEN_TS), str(schemas), "-o", str(out), "--lang", lang, "--check"],
                capture_output=True, text=True, env=node_env,
            )
            assert js.returncode == 0, js.stdout + js.stderr


def test_a_bad_schema_is_an_error_with_file_line_and_column(tmp_path: Path, node_env: dict[str, str]) -> None:
    (tmp_path / "bad.tachyon").write_text("package bad;\nstruct A {\n  x: Nope;\n}\nservice S { rpc f(A) -> A = 0xFFFF; }\n")
    r = subprocess.run([sys.executable, "-m", "tachyon.codegen", str(tmp_path), "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"--> {tmp_path}/bad.tachyon:5:29" in r.stderr, r.stderr
    assert "msg_type 65535 is out of range" in r.stderr, r.stderr
    (tmp_path / "bad.tachyon").write_text("package bad;\nstruct A {\n  x: Nope;\n}\n")
    r = subprocess.run([sys.executable, "-m", "tachyon.codegen", str(tmp_path), "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert f"--> {tmp_path}/bad.tachyon:3:6" in r.stderr and "unknown type `Nope`" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    js = subprocess.run(["node", str(CODEGEN_TS), str(tmp_path), "-o", str(tmp_path / "out")], capture_output=True, text=True, env=node_env)
    assert js.returncode == 1 and "bad.tachyon:" in js.stderr, js.stderr


def wait_ready(proc: "subprocess.Popen[str]") -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"peer said {line!r}"


def _text(r: random.Random) -> str:
    return "".join(r.choice('aZ0 é✓"\\𝄞_') for _ in range(r.randrange(10)))


def _leaf(r: random.Random) -> c.Leaf:
    return c.Leaf(name=_text(r), tags=[_text(r) for _ in range(r.randrange(3))])


def _everything(r: random.Random, depth: int) -> c.Everything:
    return c.Everything(
        u8v=r.randrange(256), u16v=r.randrange(65536), u32v=r.choice([0, 2**32 - 1, r.randrange(2**32)]),
        u64v=r.choice([0, 2**64 - 1, r.randrange(2**64)]), i8v=r.randrange(-128, 128), i16v=r.randrange(-(2**15), 2**15),
        i32v=r.choice([-(2**31), 2**31 - 1]), i64v=r.choice([-(2**63), 2**63 - 1, r.randrange(-(2**63), 2**63)]),
        f64v=r.choice([0.0, 1.5, -1e300, r.random()]), flag=r.random() < 0.5, text=_text(r),
        blob=r.randbytes(r.randrange(30)), color=r.choice(["red", "green", "blue"]), leaf=_leaf(r),
        leaves=[_leaf(r) for _ in range(r.randrange(3))], by_name={_text(r): _leaf(r) for _ in range(r.randrange(3))},
        nested=[[r.randrange(-500, 500) for _ in range(r.randrange(3))] for _ in range(r.randrange(3))],
        blobs=[r.randbytes(r.randrange(9)) for _ in range(r.randrange(3))],
        maybe=r.choice([None, _text(r)]), maybe_leaf=r.choice([None, _leaf(r)]), maybe_blob=r.choice([None, b"\x00\xff"]),
        level=r.randrange(-50, 50), type=_text(r),
        children=[_everything(r, depth - 1) for _ in range(r.randrange(3))] if depth else [],
    )


class PyMirror:
    """A Python implementation of the generated ``ConformanceServer`` protocol; ``check``
    is ``async def`` (run to completion on the server's native thread)."""

    def __init__(self, forward: "c.ConformanceClient | None" = None) -> None:
        self.forward = forward
        self.leaves = 0

    def mirror(self, req: c.Everything, /) -> c.Everything:
        return self.forward.mirror(req) if self.forward is not None else req

    async def check(self, req: c.Everything, /) -> bool:
        await asyncio.sleep(0)
        if req.text == "reject":
            raise tachyon.ServiceError(c.ConformanceError.REJECTED, "rejected as asked")
        return True

    def record(self, req: c.Leaf, /) -> None:
        self.leaves += 1

    def recorded(self, req: memoryview, /) -> int:
        return self.leaves


def _rust_server(peer_bin: Path, sock: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([str(peer_bin), "schema-serve", "--path", sock], stdout=subprocess.PIPE, text=True)
    wait_ready(p)
    return p


def test_python_client_calls_rust_server(peer_bin: Path, sock: str) -> None:
    server = _rust_server(peer_bin, sock)
    try:
        with tachyon.RpcBus.connect(sock) as bus:
            client = c.ConformanceClient(bus, timeout=10)
            client.verify()
            assert client.describe().fingerprint == c.FINGERPRINT
            r = random.Random(1)
            for _ in range(300):
                v = _everything(r, 2)
                assert client.mirror(v) == v
            v = _everything(r, 0)
            v.text = "reject"
            with pytest.raises(tachyon.TachyonRpcError) as e:
                client.check(v)
            assert e.value.code == c.ConformanceError.REJECTED == 100
            v.text = "fine"
            assert client.check(v) is True
            # Oneway: no reply, and the server saw each one before the next call.
            for _ in range(200):
                client.record(c.Leaf(name="n", tags=[]))
            assert client.recorded(b"") == 200

            async def concurrently() -> list[c.Everything]:
                vals = [_everything(r, 1) for _ in range(32)]
                got = await asyncio.gather(*(client.mirror_async(x) for x in vals))
                assert list(got) == vals
                return list(got)

            asyncio.run(concurrently())
    finally:
        server.kill()
        server.wait()


def test_rust_client_calls_python_server(peer_bin: Path, sock: str) -> None:
    with tachyon.RpcServer(sock, c.conformance_dispatcher(PyMirror())):
        r = subprocess.run([str(peer_bin), "schema-call", "--path", sock, "--count", "200", "--seed", "5"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "rejected code=100" in r.stdout


def test_node_client_calls_rust_server(peer_bin: Path, sock: str, node_env: dict[str, str]) -> None:
    server = _rust_server(peer_bin, sock)
    try:
        r = subprocess.run(["node", str(HERE / "node_peer.js"), "call", sock, "200", "3"], capture_output=True, text=True, env=node_env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        server.kill()
        server.wait()


def _node_server(sock: str, node_env: dict[str, str]) -> subprocess.Popen[str]:
    p = subprocess.Popen(["node", str(HERE / "node_peer.js"), "serve", sock], stdout=subprocess.PIPE, text=True, env=node_env)
    wait_ready(p)
    return p


def test_rust_client_calls_node_server(peer_bin: Path, sock: str, node_env: dict[str, str]) -> None:
    server = _node_server(sock, node_env)
    try:
        r = subprocess.run([str(peer_bin), "schema-call", "--path", sock, "--count", "200", "--seed", "9"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        server.terminate()
        server.wait()


def test_python_and_node_clients_call_each_others_servers(sock: str, node_env: dict[str, str]) -> None:
    server = _node_server(sock, node_env)
    try:
        with tachyon.RpcBus.connect(sock) as bus:
            client = c.ConformanceClient(bus, timeout=10)
            client.verify()
            r = random.Random(2)
            for _ in range(200):
                v = _everything(r, 2)
                assert client.mirror(v) == v
    finally:
        server.terminate()
        server.wait()
    with tachyon.RpcServer(sock, c.conformance_dispatcher(PyMirror())):
        r2 = subprocess.run(["node", str(HERE / "node_peer.js"), "call", sock, "200", "4"], capture_output=True, text=True, env=node_env, timeout=120)
        assert r2.returncode == 0, r2.stdout + r2.stderr


def test_conformance_chain_rust_python_node_rust(peer_bin: Path, node_env: dict[str, str], tmp_path: Path) -> None:
    """Random values made by Rust go to a Python server, which forwards each (decoded
    into its msgspec struct, encoded again) to a Node server (read and written by the TS
    module); what comes back to Rust must equal what it sent, as a value."""
    node_sock = f"{tempfile.gettempdir()}/tachyon-chain-n-{tmp_path.name[-8:]}.sock"
    py_sock = f"{tempfile.gettempdir()}/tachyon-chain-p-{tmp_path.name[-8:]}.sock"
    node = _node_server(node_sock, node_env)
    try:
        local = threading.local()

        class Forward(PyMirror):
            def mirror(self, req: c.Everything, /) -> c.Everything:
                # One caller end per server thread: an RpcBus is one caller's.
                if not hasattr(local, "client"):
                    local.client = c.ConformanceClient(tachyon.RpcBus.connect(node_sock), timeout=10)
                out: c.Everything = local.client.mirror(req)
                return out

        with tachyon.RpcServer(py_sock, c.conformance_dispatcher(Forward())):
            r = subprocess.run([str(peer_bin), "schema-call", "--path", py_sock, "--count", "300", "--seed", "11"], capture_output=True, text=True, timeout=180)
            assert r.returncode == 0, r.stdout + r.stderr
    finally:
        node.terminate()
        node.wait()


def test_quote_example_generated_python_client(peer_bin: Path, sock: str) -> None:
    """The checked-in quote client of examples/generated against the Python dispatcher of
    the same module, with an async handler served by ``serve_async``."""
    sys.path.insert(0, str(ROOT / "examples" / "generated" / "python"))
    import quote as q

    class Impl:
        async def quote(self, req: q.QuoteReq, /) -> q.Quote:
            if req.qty == 0:
                raise tachyon.ServiceError(q.QuotesError.BAD_ORDER, "qty must be positive")
            return q.Quote(symbol=req.symbol, bid=1.0, ask=2.0, qty=req.qty)

        def echo(self, req: memoryview, /) -> bytes:
            return bytes(req)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listening = loop.run_in_executor(None, tachyon.RpcBus.listen, sock, 1 << 16, 1 << 16)
        for _ in range(500):
            try:
                caller = tachyon.RpcBus.connect(sock)
                break
            except tachyon.TachyonConnectionError:
                await asyncio.sleep(0.01)
        callee = await listening
        serving = asyncio.create_task(q.quotes_dispatcher(Impl()).serve_async(callee))
        client = q.QuotesClient(caller, timeout=5)
        await client.describe_async()
        got = await client.quote_async(q.QuoteReq(symbol="TCHY", qty=3))
        assert got == q.Quote(symbol="TCHY", bid=1.0, ask=2.0, qty=3)
        assert await client.echo_async(b"raw") == b"raw"
        with pytest.raises(tachyon.TachyonRpcError) as e:
            await client.quote_async(q.QuoteReq(symbol="TCHY", qty=0))
        assert e.value.code == 100
        serving.cancel()
        caller.close()
        callee.close()

    asyncio.run(main())


def test_python_topics_to_a_node_receiver(sock: str, node_env: dict[str, str]) -> None:
    """Typed one-way messages over a Bus: the generated Python senders, the generated
    TypeScript ``decodeMessage`` on the receiving end."""
    node = subprocess.Popen(["node", str(HERE / "node_peer.js"), "topics", sock, "300"], stdout=subprocess.PIPE, text=True, env=node_env)
    try:
        wait_ready(node)
        for _ in range(500):
            try:
                bus = tachyon.Bus.connect(sock)
                break
            except tachyon.TachyonConnectionError:
                time.sleep(0.01)
        with bus:
            for i in range(300):
                if i % 3 == 0:
                    c.send_blobs(bus, bytes([i % 256]) * (i % 17), timeout=5)
                else:
                    c.send_leaves(bus, c.Leaf(name=f"leaf{i}", tags=[str(i)]), timeout=5)
            bus.send(b"not a topic", 77, 5)
            assert node.stdout is not None
            out = node.stdout.read()
            assert node.wait(timeout=60) == 0, out
            assert "ok 300 topic messages" in out
        # Round trip through the Python decoders too.
        leaf = c.Leaf(name="x", tags=[])
        assert c.decode_message(c.Topic.LEAVES, tachyon.schema.encode(leaf)) == (c.Topic.LEAVES, leaf)
        assert c.decode_message(77, b"") is None
    finally:
        node.kill()
        node.wait()


# ---- server streaming: 10,000 items each way, cancelled midway -----------------------


class PyFeed:
    """A Python implementation of the generated ``FeedServer`` protocol: ``ticks`` is a
    generator (counting what it sent), ``bytes_of`` an async generator."""

    def __init__(self) -> None:
        self.count = 0
        self.closed = 0

    def ticks(self, req: feed.Sub, /) -> Iterator[feed.Tick]:
        try:
            for seq in range(req.count):
                yield feed.Tick(symbol=req.symbol, seq=seq, price=seq / 4)
                self.count += 1
        finally:
            self.closed += 1

    async def bytes_of(self, req: memoryview, /) -> AsyncIterator[bytes]:
        for b in bytes(req):
            yield bytes([b])

    def sent(self, req: memoryview, /) -> int:
        return self.count


def check_feed_client(client: feed.FeedClient, bus: tachyon.RpcBus, count: int) -> int:
    """The Python side of the streaming checks (what ``check_feed`` is in Rust)."""
    client.verify()
    ticks = list(client.ticks(feed.Sub(symbol="TCHY", count=count)))
    assert ticks == [feed.Tick(symbol="TCHY", seq=i, price=i / 4) for i in range(count)]
    assert list(client.bytes_of(b"abc")) == [b"a", b"b", b"c"]
    before = client.sent(b"")
    for i, tick in enumerate(client.ticks(feed.Sub(symbol="X", count=10**9))):
        assert tick.seq == i
        if i + 1 == count // 2:
            break  # closing the generator cancels the call
    deadline = time.monotonic() + 20
    while bus.in_flight:
        assert time.monotonic() < deadline, "the cancelled stream never ended"
        client.sent(b"")
    stopped = client.sent(b"") - before
    time.sleep(0.05)
    assert client.sent(b"") - before == stopped, "the server kept streaming after the cancel"
    assert stopped < 1_000_000
    return stopped


def _feed_peer(args: list[str], node_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=node_env)
    wait_ready(p)
    return p


def test_python_streams_from_rust_and_node_servers(peer_bin: Path, sock: str, node_env: dict[str, str]) -> None:
    for server_args, env in (
        ([str(peer_bin), "feed-serve", "--path", sock], None),
        (["node", str(HERE / "node_peer.js"), "feed-serve", sock], node_env),
    ):
        server = _feed_peer(server_args, env)
        try:
            with tachyon.RpcBus.connect(sock) as bus:
                client = feed.FeedClient(bus, timeout=10)
                check_feed_client(client, bus, 10_000)

                async def use_async() -> list[int]:
                    return [t.seq async for t in client.ticks_async(feed.Sub(symbol="A", count=100))]

                assert asyncio.run(use_async()) == list(range(100))
        finally:
            server.terminate()
            server.wait()


def test_rust_and_node_stream_from_a_python_server(peer_bin: Path, sock: str, node_env: dict[str, str]) -> None:
    impl = PyFeed()
    with tachyon.RpcServer(sock, feed.feed_dispatcher(impl)):
        r = subprocess.run([str(peer_bin), "feed-call", "--path", sock, "--count", "10000"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "streamed 10000 ticks" in r.stdout, r.stdout
        r = subprocess.run(["node", str(HERE / "node_peer.js"), "feed-call", sock, "10000"], capture_output=True, text=True, env=node_env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "streamed 10000 ticks" in r.stdout, r.stdout
    assert impl.closed >= 4, "each cancelled or finished generator closed"


def test_node_streams_from_rust_and_rust_from_node(peer_bin: Path, sock: str, node_env: dict[str, str]) -> None:
    server = _feed_peer([str(peer_bin), "feed-serve", "--path", sock])
    try:
        r = subprocess.run(["node", str(HERE / "node_peer.js"), "feed-call", sock, "10000"], capture_output=True, text=True, env=node_env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        server.terminate()
        server.wait()
    server = _feed_peer(["node", str(HERE / "node_peer.js"), "feed-serve", sock], node_env)
    try:
        r = subprocess.run([str(peer_bin), "feed-call", "--path", sock, "--count", "10000"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "streamed 10000 ticks" in r.stdout, r.stdout
    finally:
        server.terminate()
        server.wait()
