"""The examples in tachyon-py/examples run for real (and `make test` type-checks them)."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def test_typed_client_example(peer_bin, sock_path):
    srv = subprocess.Popen([str(peer_bin), "rpc-serve", "--path", sock_path], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        out = subprocess.run(
            [sys.executable, str(ROOT / "tachyon-py" / "examples" / "typed_client.py"), sock_path],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "40 + 2 = 42",
            "msg_type 999 failed with code 1: no handler for msg_type 999",
        ]
    finally:
        srv.kill()
        srv.wait()


def test_demo_python_caller_against_the_rust_quote_service(peer_bin, sock_path):
    """`make demo`'s Python caller: the generated client of schemas/quote.tachyon against
    the Rust quote service of `examples/`, run as `rpc_demo server`."""
    srv = subprocess.Popen([str(peer_bin.parent / "rpc_demo"), "server", sock_path])
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "python" / "quote_client.py"), sock_path],
            capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("python caller: client.verify()       -> the server serves quote.Quotes")
        assert lines[1] == "python caller: client.quote(TCHY x100) -> TCHY bid 311.99 ask 312.01"
        assert "TachyonRpcError(code 100): symbol must be non-empty and qty positive" in lines[2]
        assert any(line.strip().startswith("asyncio echo_async") for line in lines)
    finally:
        srv.kill()
        srv.wait()
