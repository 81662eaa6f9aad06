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
