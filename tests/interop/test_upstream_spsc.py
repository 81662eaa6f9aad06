"""Our SPSC bus against upstream Tachyon 0.5.1's Python package, byte for byte.

Every stream carries deterministic payloads with a CRC-32 in `type_id`
(see payloads.py); each side verifies every message.
"""

from __future__ import annotations

import pytest

COUNT = "3000"
MAX = "65536"  # 0..64 KiB: slots from 64 B to 64 KiB + 64, wrapping many times


def ok(peers, proc, expected: str) -> str:
    code, out, err = peers.result(proc)
    assert code == 0, f"exit {code}; stderr: {err}"
    assert out == f"ok {expected} messages"
    return err


def ours_ok(peers, proc, expected: str) -> None:
    """Our side finished, and stayed on ABI v0x04: an upstream peer never gets the fast mode."""
    err = ok(peers, proc, expected)
    assert "ring-mode compat" in err, err


@pytest.mark.parametrize("upstream_listens", [True, False], ids=["upstream-listens", "we-listen"])
@pytest.mark.parametrize("capacity", [1 << 20, 1 << 17], ids=["1MiB", "128KiB"])
def test_upstream_producer_to_our_consumer(peers, sock_path, upstream_listens, capacity):
    # At 128 KiB the ring holds one 64 KiB message: it only works because our consumer
    # publishes its tail when it finds the ring empty (upstream's would stall).
    common = ["--path", sock_path, "--count", COUNT, "--seed", "11", "--max-size", MAX]
    if upstream_listens:
        up = peers.upstream("produce", *common, "--listen", str(capacity))
        us = peers.ours("consume", *common, "--connect", "--timeout-ms", "60000")
    else:
        us = peers.ours("consume", *common, "--listen", str(capacity), "--timeout-ms", "60000")
        up = peers.upstream("produce", *common, "--connect")
    ours_ok(peers, us, COUNT)
    ok(peers, up, COUNT)


@pytest.mark.parametrize("upstream_listens", [True, False], ids=["upstream-listens", "we-listen"])
def test_our_producer_to_upstream_consumer(peers, sock_path, upstream_listens):
    # 4 MiB holds 32 of the largest messages, so upstream's every-32 tail publication
    # cannot stall (WIRE.md lists that upstream defect).
    common = ["--path", sock_path, "--count", COUNT, "--seed", "12", "--max-size", MAX]
    if upstream_listens:
        up = peers.upstream("consume", *common, "--listen", str(1 << 22))
        us = peers.ours("produce", *common, "--connect", "--timeout-ms", "60000")
    else:
        us = peers.ours("produce", *common, "--listen", str(1 << 22), "--timeout-ms", "60000")
        up = peers.upstream("consume", *common, "--connect")
    ok(peers, up, COUNT)
    ours_ok(peers, us, COUNT)


def test_zero_length_and_tiny_messages_both_ways(peers, sock_path):
    common = ["--path", sock_path, "--count", "2000", "--seed", "3", "--max-size", "3"]
    up = peers.upstream("produce", *common, "--listen", "4096")
    us = peers.ours("consume", *common, "--connect")
    ours_ok(peers, us, "2000")
    ok(peers, up, "2000")


def test_our_spsc_connector_rejects_their_rpc_listener(peers, sock_path):
    up = peers.upstream("rpc-listen", "--path", sock_path)
    us = peers.ours("connect-only", "--path", sock_path)
    code, _, err = peers.result(us)
    assert code == 1
    assert err.startswith("error: AbiMismatch:"), err
    assert "Rpc" in err
    # Upstream's listener never reads back: it returns normally and exits.
    code, out, err = peers.result(up)
    assert code == 0, err


def test_their_rpc_connector_rejects_our_spsc_listener(peers, sock_path):
    us = peers.ours("consume", "--path", sock_path, "--listen", "4096", "--count", "0")
    up = peers.upstream("rpc-connect", "--path", sock_path)
    code, _, err = peers.result(up)
    assert code == 1
    assert "ConnectionError" in err, err
    # Our listener saw an upstream-style close (no extension answer) and exits cleanly.
    code, out, err = peers.result(us)
    assert code == 0, err
