"""Helpers shared by the `tachyon` package tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"  # payloads.py: the stream format shared with Rust
if str(INTEROP) not in sys.path:
    sys.path.insert(0, str(INTEROP))


def connect_retry(path: str, timeout: float = 20.0):
    """Connects as soon as a listener is there (connect itself fails at once)."""
    import tachyon

    deadline = time.monotonic() + timeout
    while True:
        try:
            return tachyon.Bus.connect(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def run_python(code: str) -> subprocess.Popen[str]:
    """Starts `code` in another Python process of the same venv."""
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def connect_rpc_retry(path: str, timeout: float = 20.0):
    """Connects an RPC caller as soon as a callee listens."""
    import tachyon

    deadline = time.monotonic() + timeout
    while True:
        try:
            return tachyon.RpcBus.connect(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
