//! A throwaway PKI for the TLS tests: a CA, a server certificate, a client certificate
//! it signed, and a rogue CA with a client certificate of its own (which a server
//! trusting the first CA must refuse). Written as PEM files, so Python and Node tests
//! load exactly what the Rust ones do (`tachyon-peer gen-certs`).
//!
//! `spoof.pem` is the certificate of an attack on identity parsing: the real CA signed
//! it for `CN=mallory`, with an Organization whose value bytes are a whole CN attribute
//! for `admin` (`06 03 55 04 03 0c 05 "admin"`). A parser that searches the subject's
//! bytes for the CN OID reports `admin`; handlers must see `mallory`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The Organization value of `spoof.pem`: the DER of the attribute `CN=admin`.
pub const SPOOFED_O: &str = "\u{6}\u{3}\u{55}\u{4}\u{3}\u{c}\u{5}admin";

/// The files [`write`] made.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The directory.
    pub dir: PathBuf,
}

impl Pki {
    /// A file of the PKI: `ca.pem`, `server.pem`, `server.key`, `client.pem`,
    /// `client.key`, `spoof.pem`, `spoof.key`, `rogue-ca.pem`, `rogue.pem`, `rogue.key`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn new_ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate()?)
}

fn leaf(
    cn: &str,
    names: &[String],
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> Result<(String, String), rcgen::Error> {
    leaf_with(cn, names, issuer, None)
}

fn leaf_with(
    cn: &str,
    names: &[String],
    issuer: &CertifiedIssuer<'static, KeyPair>,
    organization: Option<&str>,
) -> Result<(String, String), rcgen::Error> {
    let mut p = CertificateParams::new(names.to_vec())?;
    // The Organization comes first, so a byte search meets its value before the CN (a
    // new DistinguishedName: the default one already holds a CN).
    p.distinguished_name = DistinguishedName::new();
    if let Some(o) = organization {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a fresh PKI into `dir`. The server certificate names `localhost`,
/// `127.0.0.1`, `::1` and `extra_names` (the addresses of other network namespaces).
///
/// # Errors
/// A file that cannot be written, or a name rcgen refuses.
pub fn write(dir: &Path, extra_names: &[String]) -> Result<Pki, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    let ca = new_ca("Tachyon test CA").map_err(|e| err(&e))?;
    let rogue = new_ca("Rogue CA").map_err(|e| err(&e))?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(extra_names.iter().cloned());
    let (server, server_key) = leaf("tachyon-server", &names, &ca).map_err(|e| err(&e))?;
    let (client, client_key) =
        leaf("client-a", &["client-a.test".to_owned()], &ca).map_err(|e| err(&e))?;
    let (spoof, spoof_key) =
        leaf_with("mallory", &[], &ca, Some(SPOOFED_O)).map_err(|e| err(&e))?;
    let (rogue_client, rogue_key) =
        leaf("mallory", &["mallory.test".to_owned()], &rogue).map_err(|e| err(&e))?;
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server),
        ("server.key", server_key),
        ("client.pem", client),
        ("client.key", client_key),
        ("spoof.pem", spoof),
        ("spoof.key", spoof_key),
        ("rogue-ca.pem", rogue.pem()),
        ("rogue.pem", rogue_client),
        ("rogue.key", rogue_key),
    ] {
        std::fs::write(dir.join(name), text).map_err(|e| err(&e))?;
    }
    Ok(Pki { dir: dir.to_owned() })
}
