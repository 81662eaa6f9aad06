"""Our RPC against upstream Tachyon 0.5.1's Python RPC, in both roles.

Upstream's consumers publish their tail only every 32 messages (a defect WIRE.md lists),
so a 64 KiB ring must hold at least 32 in-flight messages or upstream stalls for ever.
Payloads here stay at or below 1 KiB for that reason; our own consumers do not need it.
"""

from __future__ import annotations

MAX = "1024"


def test_their_dispatcher_serves_our_rust_caller(peers, sock_path):
    # 200 echoes plus one unknown msg_type; upstream replies 0xFFFF with a bare 2-byte
    # payload, which our caller must turn into a typed error, not a response.
    up = peers.upstream("rpc-serve", "--path", sock_path, "--count", "201")
    us = peers.ours("rpc-call", "--path", sock_path, "--count", "200", "--max-size", MAX)
    code, out, err = peers.result(us)
    assert code == 0, err
    assert "ring-mode compat" in err, err  # upstream never gets the fast mode
    lines = out.splitlines()
    assert lines[0] == "rpc-error msg_type=999 code=0", out  # code 0 = upstream, no detail
    assert lines[-1] == "ok 200 messages"
    code, out, err = peers.result(up)
    assert code == 0, err


def test_our_rust_server_serves_their_caller_and_they_read_our_error_reply(peers, sock_path):
    srv = peers.ours("rpc-serve", "--path", sock_path)
    try:
        assert srv.stdout.readline().strip() == "ready"
        up = peers.upstream("rpc-call", "--path", sock_path, "--count", "200", "--max-size", MAX)
        code, out, err = peers.result(up)
        assert code == 0, err
        first, last = out.splitlines()
        # Upstream reads our structured reply as its own sentinel: type 0xFFFF, and the
        # first two bytes, big-endian, name the failed msg_type. The msgpack body follows.
        assert first.startswith("error-reply type_id=0xffff failed_msg_type=999 bytes="), first
        assert int(first.rsplit("=", 1)[1]) > 2
        assert last == "ok 200 messages"
    finally:
        srv.kill()
        srv.communicate()
