//! TLS 1.3 for the TCP transport, with `rustls` (the `ring` provider; no OpenSSL).
//!
//! rustls is driven through its sans-IO interface: the reactors keep doing every socket
//! operation themselves (io_uring receives into provided buffers, coalesced sends) and
//! hand rustls the bytes. A server connection decrypts what arrived, feeds the plaintext
//! to the same frame state machine as a plaintext one, and encrypts what that machine
//! queued in one pass per loop turn (see [`crate::net::rpc::conn`]).
//!
//! Mutual TLS is the authentication: a server built with a client CA refuses every
//! client without a certificate that CA signed, and hands the verified identity
//! ([`PeerIdentity`]) to the handlers of that client's calls ([`peer_identity`]).
//!
//! Only TLS 1.3 is offered. Session tickets are not sent: a connection lives long, and
//! resumption would only save a handshake per reconnect.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

pub(crate) mod identity;
use identity::PeerIdentity;

fn tls_err(what: &str) -> impl Fn(rustls::Error) -> Error + '_ {
    move |e| Error::Tls(format!("{what}: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{what}: not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what}: no CERTIFICATE block in the PEM")));
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        Error::Tls(format!("private key: no usable PKCS#8, PKCS#1 or SEC1 key in the PEM ({e})"))
    })
}

fn roots(pem: &[u8], what: &str) -> Result<Arc<rustls::RootCertStore>> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(pem, what)? {
        store.add(c).map_err(tls_err(what))?;
    }
    Ok(Arc::new(store))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Tls(format!("cannot read {}: {e}", path.display())))
}

/// A server's TLS settings: its certificate chain and key, and optionally the CA whose
/// client certificates it requires (mutual TLS).
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    mutual: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("mutual", &self.mutual).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From PEM text: the server's certificate chain (leaf first), its private key, and
    /// the CA certificates client certificates must chain to (`None`: no client
    /// certificates asked for).
    ///
    /// # Errors
    /// [`Error::Tls`] naming what does not load, or a key that does not match the
    /// certificate.
    pub fn from_pem(
        cert_chain: &[u8],
        private_key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("protocol versions"))?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots(ca, "client CA")?,
                    provider(),
                )
                .build()
                .map_err(|e| Error::Tls(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs(cert_chain, "certificate chain")?, key(private_key)?)
            .map_err(tls_err("certificate and key"))?;
        config.send_tls13_tickets = 0;
        Ok(Self { config: Arc::new(config), mutual: client_ca.is_some() })
    }

    /// As [`ServerTls::from_pem`], from files.
    ///
    /// # Errors
    /// [`Error::Tls`], also for a file that cannot be read.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
        client_ca: Option<&Path>,
    ) -> Result<Self> {
        let ca = client_ca.map(read).transpose()?;
        Self::from_pem(&read(cert_chain.as_ref())?, &read(private_key.as_ref())?, ca.as_deref())
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certs(&self) -> bool {
        self.mutual
    }
}

/// A client's TLS settings: the CA that signed the server's certificate, optionally the
/// client's own certificate and key (for a server that requires them), and the name to
/// check the server's certificate against (default: the host of the address).
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// From PEM text: the CA certificates the server's chain must lead to, and the
    /// client's certificate chain and key (`None`: connect without a certificate).
    ///
    /// # Errors
    /// [`Error::Tls`] naming what does not load.
    pub fn from_pem(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<Self> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("protocol versions"))?
            .with_root_certificates(roots(ca, "CA")?);
        let config = match identity {
            Some((chain, k)) => builder
                .with_client_auth_cert(certs(chain, "client certificate")?, key(k)?)
                .map_err(tls_err("client certificate and key"))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self { config: Arc::new(config), server_name: None })
    }

    /// As [`ClientTls::from_pem`], from files.
    ///
    /// # Errors
    /// [`Error::Tls`], also for a file that cannot be read.
    pub fn from_pem_files(ca: impl AsRef<Path>, identity: Option<(&Path, &Path)>) -> Result<Self> {
        let identity = match identity {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        Self::from_pem(
            &read(ca.as_ref())?,
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
    }

    /// Checks the server's certificate against `name` instead of the address's host.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// A client session for `host` (the address's host, unless a name was set).
    pub(crate) fn session(&self, host: &str) -> Result<rustls::ClientConnection> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| Error::Tls(format!("{name:?} is not a DNS name or IP address")))?;
        rustls::ClientConnection::new(self.config.clone(), name).map_err(tls_err("client session"))
    }
}

thread_local! {
    static CURRENT_PEER: RefCell<Option<Arc<PeerIdentity>>> = const { RefCell::new(None) };
}

/// The verified client identity of the call this thread is handling now: `Some` inside
/// a handler serving a client that presented a certificate over mutual TLS, `None`
/// elsewhere (plaintext, shared memory, no handler running).
///
/// ```no_run
/// use tachyon::rpc::{Dispatcher, ServerError};
/// let mut d = Dispatcher::new();
/// d.register_raw_fallible(1, "whoami", |_: &[u8]| {
///     let peer = tachyon::net::peer_identity().ok_or("no client certificate")?;
///     Ok::<_, ServerError>(peer.name().unwrap_or("?").as_bytes().to_vec())
/// })
/// .unwrap();
/// ```
pub fn peer_identity() -> Option<Arc<PeerIdentity>> {
    CURRENT_PEER.with(|p| p.borrow().clone())
}

/// Runs `f` with `peer` as the current call's identity.
pub(crate) fn with_peer<R>(peer: Option<&Arc<PeerIdentity>>, f: impl FnOnce() -> R) -> R {
    // Restored even if `f` unwinds (handlers run under catch_unwind further down).
    struct Restore(Option<Arc<PeerIdentity>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            CURRENT_PEER.with(|p| *p.borrow_mut() = old);
        }
    }
    let Some(peer) = peer else { return f() };
    let old = CURRENT_PEER.with(|p| p.replace(Some(peer.clone())));
    let _restore = Restore(old);
    f()
}

/// Why a TLS session failed, in words for the peer's error and the log.
pub(crate) fn describe(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, Error as E};
    match e {
        E::AlertReceived(A::CertificateRequired) => {
            "the server requires a client certificate (pass one in the TLS options)".into()
        }
        E::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::DecryptError,
        ) => format!("the peer refused our certificate ({e})"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            format!("the peer does not speak TLS 1.3 ({e}); is it a plaintext server?")
        }
        E::InvalidCertificate(c) => format!("the peer's certificate is not valid: {c:?}"),
        E::NoCertificatesPresented => "the client presented no certificate".into(),
        _ => e.to_string(),
    }
}

/// The TLS side of one server connection.
pub(crate) struct ServerSession {
    tls: rustls::ServerConnection,
    /// The verified client identity, once the handshake is done.
    pub peer: Option<Arc<PeerIdentity>>,
    handshaken: bool,
    close_notified: bool,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// What decrypting a batch of bytes gave.
pub(crate) enum Opened {
    /// Fine (the plaintext was appended).
    Ok,
    /// The session failed; an alert for the peer may be queued.
    Failed(String),
}

impl ServerSession {
    pub fn new(config: &ServerTls) -> Result<Self> {
        let mut tls = rustls::ServerConnection::new(config.config.clone())
            .map_err(tls_err("server session"))?;
        // Our own water marks bound what waits to be sent (see `Conn::wants_read`).
        tls.set_buffer_limit(None);
        Ok(Self { tls, peer: None, handshaken: false, close_notified: false })
    }

    /// Decrypts `bytes` from the socket, appending plaintext to `plain`.
    pub fn open(&mut self, mut bytes: &[u8], plain: &mut Vec<u8>) -> Opened {
        while !bytes.is_empty() {
            match self.tls.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Opened::Failed(format!("tls: {e}")),
            }
            let state = match self.tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => return Opened::Failed(format!("tls: {}", describe(&e))),
            };
            let want = state.plaintext_bytes_to_read();
            if want > 0 {
                let at = plain.len();
                plain.resize(at + want, 0);
                match std::io::Read::read(&mut self.tls.reader(), &mut plain[at..]) {
                    Ok(n) => plain.truncate(at + n),
                    Err(e) => {
                        plain.truncate(at);
                        return Opened::Failed(format!("tls: {e}"));
                    }
                }
            }
        }
        if !self.handshaken && !self.tls.is_handshaking() {
            self.handshaken = true;
            self.peer = self
                .tls
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|c| Arc::new(PeerIdentity::from_der(c.as_ref())));
        }
        Opened::Ok
    }

    /// Encrypts `plain` (all of it: the buffer is unbounded here, our water marks bound
    /// it) and appends what goes on the wire to `wire`; with `close`, a close_notify
    /// follows.
    pub fn seal(&mut self, plain: &[u8], close: bool, wire: &mut Vec<u8>) {
        seal_into(&mut self.tls, plain, wire);
        if close && !self.close_notified {
            self.close_notified = true;
            self.tls.send_close_notify();
            seal_into(&mut self.tls, &[], wire);
        }
    }
}

/// Encrypts all of `plain` and appends the records to `wire`. rustls takes at most
/// its buffer limit of plaintext per write, so this alternates writes and drains until
/// nothing is left (a write that took nothing, with nothing to drain, means the session
/// is closed: the rest is dropped, and the connection fails on its next read).
fn seal_into<D>(tls: &mut rustls::ConnectionCommon<D>, mut plain: &[u8], wire: &mut Vec<u8>) {
    loop {
        if !plain.is_empty() {
            match std::io::Write::write(&mut tls.writer(), plain) {
                Ok(n) => plain = &plain[n..],
                Err(_) => return,
            }
        }
        let mut drained = false;
        while tls.wants_write() {
            match tls.write_tls(wire) {
                Ok(0) | Err(_) => break,
                Ok(_) => drained = true,
            }
        }
        if plain.is_empty() || !drained {
            return;
        }
    }
}

/// Encrypts `plain` with a client session, appending the records to `wire`.
pub(crate) fn seal_client(tls: &mut rustls::ClientConnection, plain: &[u8], wire: &mut Vec<u8>) {
    seal_into(tls, plain, wire);
}

/// Decrypts `bytes` with a client session, appending plaintext to `plain`.
pub(crate) fn open_client(
    tls: &mut rustls::ClientConnection,
    mut bytes: &[u8],
    plain: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    while !bytes.is_empty() {
        match tls.read_tls(&mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        let state = tls.process_new_packets().map_err(|e| describe(&e))?;
        let want = state.plaintext_bytes_to_read();
        if want > 0 {
            let at = plain.len();
            plain.resize(at + want, 0);
            let n = std::io::Read::read(&mut tls.reader(), &mut plain[at..])
                .map_err(|e| e.to_string())?;
            plain.truncate(at + n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_says_what_is_wrong() {
        let e = ServerTls::from_pem(b"junk", b"junk", None).unwrap_err().to_string();
        assert!(e.contains("certificate chain"), "{e}");
        let e = ClientTls::from_pem(b"", None).unwrap_err().to_string();
        assert!(e.contains("CA"), "{e}");
        let e = ServerTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read /nonexistent/cert.pem"), "{e}");
    }
}
