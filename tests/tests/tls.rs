//! TLS 1.3 and mutual TLS over TCP, for real: certificates from a throwaway PKI, both
//! reactor backends, inline handlers and a worker pool, and every way a connection can
//! be refused (no certificate, a certificate from another CA, a plaintext client, a TLS
//! client to a plaintext server, a handshake that stalls).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::{
    Backend, ClientTls, ServerTls, TcpClient, TcpClientOptions, TcpServer, TcpServerHandle,
    TcpServerOptions,
};
use tachyon::rpc::code;
use tachyon::Error;
use tachyon_tests::pki::{self, Pki};
use tachyon_tests::service::{add, caller, echo, fail, AddReq, AddResp};

const T: Duration = Duration::from_secs(20);

fn pki(tag: &str) -> Pki {
    let dir = tachyon_tests::scratch_path(&format!("pki-{tag}"));
    pki::write(&dir, &[]).unwrap()
}

fn server_tls(p: &Pki, mutual: bool) -> ServerTls {
    let ca = p.file("ca.pem");
    ServerTls::from_pem_files(p.file("server.pem"), p.file("server.key"), mutual.then_some(&*ca))
        .unwrap()
}

fn client_tls(p: &Pki, who: Option<&str>) -> ClientTls {
    let (c, k) = match who {
        Some(w) => (p.file(&format!("{w}.pem")), p.file(&format!("{w}.key"))),
        None => (p.file("none"), p.file("none")),
    };
    ClientTls::from_pem_files(p.file("ca.pem"), who.map(|_| (c.as_path(), k.as_path()))).unwrap()
}

fn serve(opts: TcpServerOptions) -> TcpServerHandle {
    let server = TcpServer::bind("tcp://127.0.0.1:0", opts.on_error(|_| {})).unwrap();
    server.spawn(Arc::new(tachyon_tests::service::dispatcher())).unwrap()
}

fn connect(h: &TcpServerHandle, tls: Option<ClientTls>) -> tachyon::Result<TcpClient> {
    let mut opts = TcpClientOptions::default().connect_timeout(Duration::from_secs(5));
    opts.tls = tls;
    TcpClient::connect_with(&h.address(), &opts)
}

fn tls_error(e: Error) -> String {
    match e {
        Error::Tls(m) => m,
        other => panic!("not a TLS error: {other:?}"),
    }
}

#[test]
fn mutual_tls_serves_typed_raw_and_error_calls_and_names_the_caller() {
    let p = pki("mutual");
    for backend in [Backend::IoUring, Backend::Epoll] {
        for workers in [0, 2] {
            let h = serve(
                TcpServerOptions::default()
                    .backend(backend)
                    .workers(workers)
                    .tls(server_tls(&p, true)),
            );
            let c = connect(&h, Some(client_tls(&p, Some("client")))).unwrap();
            let what = format!("{backend:?}, {workers} workers");
            assert_eq!(echo::call(&c, b"sealed").unwrap(), b"sealed", "{what}");
            assert_eq!(add::call(&c, &AddReq { a: 40, b: 2 }).unwrap(), AddResp { sum: 42 });
            assert_eq!(caller::call(&c, &()).unwrap(), "client-a", "{what}");
            match fail::call(&c, &"no".to_owned()).unwrap_err() {
                Error::Rpc(e) => assert_eq!(e.code, code::HANDLER_ERROR),
                other => panic!("{what}: {other}"),
            }
            // Large payloads cross many TLS records; pipelined calls share records.
            let big: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
            assert_eq!(echo::call(&c, &big).unwrap(), big, "{what}");
            let cids: Vec<u64> =
                (0..500u32).map(|i| c.call(&i.to_le_bytes(), 1).unwrap()).collect();
            for (i, cid) in cids.into_iter().enumerate() {
                assert_eq!(c.wait_timeout(cid, T).unwrap(), (i as u32).to_le_bytes());
            }
            h.shutdown().unwrap();
        }
    }
}

#[test]
fn a_forged_common_name_inside_another_attribute_is_not_believed() {
    let p = pki("spoof");
    // The attack is in the certificate: its subject holds `CN=admin`'s DER bytes (inside
    // the Organization) before the real CN.
    let der = std::fs::read_to_string(p.file("spoof.pem")).unwrap();
    let der = rustls_pem_der(&der);
    let fake = [0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'a', b'd', b'm', b'i', b'n'];
    let real = [0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x07];
    let at = |needle: &[u8]| der.windows(needle.len()).position(|w| w == needle);
    assert!(at(&fake).unwrap() < at(&real).unwrap(), "the forged CN must come first");

    let subject = || {
        let mut d = tachyon::rpc::Dispatcher::new();
        d.register_raw_fallible(9, "subject", |_: &[u8]| {
            let peer = tachyon::net::peer_identity().ok_or("no client certificate")?;
            let attrs: Vec<String> = peer
                .subject
                .iter()
                .flatten()
                .map(|a| format!("{}={:?}", a.name.unwrap_or("?"), a.value))
                .collect();
            let cn = peer.common_name.clone().unwrap_or_default();
            Ok::<_, tachyon::rpc::ServerError>(format!("{cn}|{}", attrs.join(",")).into_bytes())
        })
        .unwrap();
        Arc::new(d)
    };
    for backend in [Backend::IoUring, Backend::Epoll] {
        let server = TcpServer::bind(
            "tcp://127.0.0.1:0",
            TcpServerOptions::default().backend(backend).tls(server_tls(&p, true)).on_error(|_| {}),
        )
        .unwrap();
        let h = server.spawn(subject()).unwrap();
        let c = connect(&h, Some(client_tls(&p, Some("spoof")))).unwrap();
        let got = String::from_utf8(c.invoke(b"", 9, Some(T)).unwrap()).unwrap();
        assert_eq!(got, format!("mallory|O={:?},CN=\"mallory\"", pki::SPOOFED_O), "{backend:?}");
        h.shutdown().unwrap();
    }
}

/// The DER of the first PEM block of `pem`.
fn rustls_pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&body)
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = A.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn server_only_tls_has_no_caller_identity() {
    let p = pki("plain-auth");
    let h = serve(TcpServerOptions::default().tls(server_tls(&p, false)));
    let c = connect(&h, Some(client_tls(&p, None))).unwrap();
    assert_eq!(echo::call(&c, b"x").unwrap(), b"x");
    assert_eq!(caller::call(&c, &()).unwrap(), "", "no client certificate, no identity");
}

#[test]
fn clients_without_a_valid_certificate_are_refused_and_the_server_serves_on() {
    let p = pki("refuse");
    let h = serve(TcpServerOptions::default().tls(server_tls(&p, true)));
    // No certificate: TLS 1.3 finishes the client's side of the handshake first, so
    // the refusal arrives as the server's alert, while the hello is exchanged.
    let e = tls_error(connect(&h, Some(client_tls(&p, None))).unwrap_err());
    assert!(e.contains("requires a client certificate"), "{e}");
    // A certificate from another CA.
    let e = tls_error(connect(&h, Some(client_tls(&p, Some("rogue")))).unwrap_err());
    assert!(e.contains("refused") || e.contains("certificate"), "{e}");
    // A client that does not trust the server's CA refuses the server.
    let other = pki("other-ca");
    let e = tls_error(connect(&h, Some(client_tls(&other, Some("client")))).unwrap_err());
    assert!(e.contains("certificate is not valid"), "{e}");
    // A plaintext client is told, in its own protocol, to use TLS.
    let e = tls_error(connect(&h, None).unwrap_err());
    assert!(e.contains("requires TLS"), "{e}");
    // None of that hurt the server.
    let c = connect(&h, Some(client_tls(&p, Some("client")))).unwrap();
    assert_eq!(echo::call(&c, b"fine").unwrap(), b"fine");
    assert!(h.stats().protocol_errors >= 3, "{:?}", h.stats());
}

#[test]
fn a_tls_client_to_a_plaintext_server_gets_a_clear_error() {
    let p = pki("to-plain");
    let h = serve(TcpServerOptions::default());
    let e = tls_error(connect(&h, Some(client_tls(&p, Some("client")))).unwrap_err());
    assert!(e.contains("plaintext") || e.contains("TLS"), "{e}");
}

#[test]
fn a_stalled_handshake_closes_only_that_connection() {
    let p = pki("stall");
    let h = serve(
        TcpServerOptions::default()
            .tls(server_tls(&p, true))
            .timeouts(Duration::from_millis(300), Duration::from_secs(5)),
    );
    let addr = h.local_addr();
    // Half a ClientHello record, then silence.
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    raw.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let good = connect(&h, Some(client_tls(&p, Some("client")))).unwrap();
    raw.set_read_timeout(Some(T)).unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    // The server closes it (end of stream), not our 20 s read timeout, and not before its
    // 300 ms handshake timeout.
    raw.read_to_end(&mut rest).expect("closed by the server, not timed out");
    assert!(start.elapsed() >= Duration::from_millis(250), "closed after {:?}", start.elapsed());
    assert_eq!(echo::call(&good, b"unaffected").unwrap(), b"unaffected");

    // A server that accepts and never answers: the client's handshake times out.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = TcpClientOptions::default().connect_timeout(Duration::from_millis(300));
    opts.tls = Some(client_tls(&p, Some("client")));
    let e = TcpClient::connect_with(&format!("tcp://{}", mute.local_addr().unwrap()), &opts)
        .unwrap_err();
    assert!(tls_error(e).contains("did not finish"));
}

#[test]
fn only_tls_may_serve_other_machines_without_the_insecure_switch() {
    let p = pki("bind");
    let e = TcpServer::bind("tcp://0.0.0.0:0", TcpServerOptions::default()).unwrap_err();
    assert!(matches!(&e, Error::PermissionDenied(m) if m.contains("insecure")), "{e}");
    TcpServer::bind("tcp://0.0.0.0:0", TcpServerOptions::default().tls(server_tls(&p, true)))
        .unwrap();
    TcpServer::bind("tcp://0.0.0.0:0", TcpServerOptions::default().insecure(true)).unwrap();
}

#[test]
fn bad_pem_files_are_typed_errors() {
    let p = pki("bad");
    let e =
        ServerTls::from_pem_files(p.file("server.key"), p.file("server.key"), None).unwrap_err();
    assert!(tls_error(e).contains("no CERTIFICATE"));
    // A key that is not the certificate's.
    let e =
        ServerTls::from_pem_files(p.file("server.pem"), p.file("client.key"), None).unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
}
