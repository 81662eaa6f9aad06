"""TLS 1.3 and mutual TLS from Python (loopback): `tachyon.RpcServer("tcp://...",
tls=TlsOptions(...))`, `tachyon.connect(..., tls=...)`, `peer_identity()` inside a
handler, and the typed errors for every refusal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import tachyon


@pytest.fixture(scope="module")
def pki(peer_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    subprocess.run([str(peer_bin), "gen-certs", "--path", str(d)], check=True, capture_output=True)
    return d


def _dispatcher() -> tachyon.RpcDispatcher:
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    @d.handler(7, typed=True)
    def caller(req: object) -> list[object]:
        peer = tachyon.peer_identity()
        assert peer is not None
        return [peer.name, peer.dns_names, len(peer.certificate) > 100]

    return d


@pytest.mark.parametrize("workers", [0, 2])
def test_mutual_tls_names_the_caller_and_refuses_the_rest(pki: Path, workers: int) -> None:
    server_tls = tachyon.TlsOptions(
        cert=pki / "server.pem",
        key=(pki / "server.key").read_text(),  # PEM text works as well as a path
        ca=(pki / "ca.pem").read_bytes(),
    )
    with tachyon.RpcServer("tcp://127.0.0.1:0", _dispatcher(), tls=server_tls, workers=workers) as server:
        good = tachyon.TlsOptions(ca=pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key")
        client = tachyon.connect(server.path, timeout=5, tls=good)
        assert client.invoke(b"sealed", 1, 5) == b"sealed"
        who = tachyon.RpcEndpoint(lambda r: r, msg_type=7, typed=True).call(client, None, timeout=5)
        assert who == ["client-a", ["client-a.test"], True]
        assert tachyon.peer_identity() is None, "outside a handler there is no caller"
        refusals = [
            tachyon.TlsOptions(ca=pki / "ca.pem"),
            tachyon.TlsOptions(ca=pki / "ca.pem", cert=pki / "rogue.pem", key=pki / "rogue.key"),
            None,  # plaintext
        ]
        for tls in refusals:
            with pytest.raises(tachyon.TachyonTlsError):
                tachyon.connect(server.path, timeout=5, tls=tls)
        assert client.invoke(b"still fine", 1, 5) == b"still fine"


def test_a_cn_forged_inside_another_attribute_is_not_believed(pki: Path) -> None:
    """spoof.pem: the CA signed CN=mallory, with an Organization whose bytes are a whole
    CN=admin attribute, placed first. The handler must see mallory."""
    d = tachyon.RpcDispatcher()

    @d.handler(9, typed=True)
    def who(req: object) -> list[object]:
        peer = tachyon.peer_identity()
        assert peer is not None
        return [peer.common_name, peer.name, [[(a.name, a.oid, a.value) for a in rdn] for rdn in peer.subject], peer.subject_values("O")]

    server_tls = tachyon.TlsOptions(cert=pki / "server.pem", key=pki / "server.key", ca=pki / "ca.pem")
    forged_o = "\x06\x03\x55\x04\x03\x0c\x05admin"
    with tachyon.RpcServer("tcp://127.0.0.1:0", d, tls=server_tls) as server:
        tls = tachyon.TlsOptions(ca=pki / "ca.pem", cert=pki / "spoof.pem", key=pki / "spoof.key")
        client = tachyon.connect(server.path, timeout=5, tls=tls)
        got = tachyon.RpcEndpoint(lambda r: r, msg_type=9, typed=True).call(client, None, timeout=5)
        assert got == [
            "mallory",
            "mallory",
            [[["O", "2.5.4.10", forged_o]], [["CN", "2.5.4.3", "mallory"]]],
            [forged_o],
        ]


def test_bad_tls_arguments_are_clear(pki: Path) -> None:
    with pytest.raises(ValueError, match="ca="):
        tachyon.connect("tcp://127.0.0.1:1", tls=tachyon.TlsOptions())
    with pytest.raises(ValueError, match="tcp://"):
        tachyon.connect("/tmp/some.sock", tls=tachyon.TlsOptions(ca=pki / "ca.pem"))
    with pytest.raises(tachyon.TachyonTlsError, match="CERTIFICATE"):
        tachyon.RpcServer("tcp://127.0.0.1:0", _dispatcher(), tls=tachyon.TlsOptions(cert=pki / "server.key", key=pki / "server.key"))
    with pytest.raises(tachyon.TachyonPermissionError, match="insecure"):
        tachyon.RpcServer("tcp://0.0.0.0:0", _dispatcher())
    assert issubclass(tachyon.TachyonTlsError, ConnectionError)
