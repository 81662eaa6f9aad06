//! Who a verified client certificate names: its subject, read by a real X.509 parser
//! (`x509-cert`, RustCrypto's DER types), and its subject alternative names.
//!
//! The handshake has already checked the certificate's chain; what is read here is still
//! input, so nothing is found by searching bytes: the subject is decoded as the sequence
//! of relative distinguished names (RDNs) it is, each attribute's value decoded by its
//! own string type, and the common name taken by rule:
//!
//! - **Common name.** [`PeerIdentity::common_name`] is the value of the subject's one CN
//!   attribute. A subject with several CNs (in separate RDNs or in one multi-valued RDN)
//!   is ambiguous, and no CN is chosen: `common_name` is `None`, and every value is in
//!   [`PeerIdentity::subject`] for an application that wants its own rule.
//! - **Name.** [`PeerIdentity::name`] prefers a SPIFFE id (a `spiffe://` URI SAN, the
//!   workload identity of SPIFFE/SPIRE and service meshes), then the common name, then
//!   the first DNS SAN, then the first URI SAN.
//! - **String types.** UTF8String, PrintableString, IA5String, NumericString and
//!   VisibleString are read as UTF-8 (they are subsets of it; invalid bytes make the value
//!   unreadable), BMPString as UTF-16 (big-endian), TeletexString as UTF-8 when it is
//!   valid UTF-8 and as Latin-1 otherwise (what certificates in the wild put there). Any
//!   other value type is shown as `#` and the hex of its DER encoding (RFC 4514's form);
//!   a CN that is not a readable string is no CN.
//! - A certificate this parser cannot decode yields an identity with no names (the DER
//!   is still there): authorization by name then fails closed.

use std::net::IpAddr;

use x509_cert::der::asn1::BmpString;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// One attribute of a subject's distinguished name, such as `CN=client-a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute {
    /// The attribute type's object identifier, dotted (`2.5.4.3` for CN).
    pub oid: String,
    /// Its short name where it has a common one (`CN`, `O`, `OU`, `C`, `L`, `ST`,
    /// `emailAddress`, ...).
    pub name: Option<&'static str>,
    /// The value decoded by its string type, or `#` and the hex of its DER when it is
    /// not a readable string.
    pub value: String,
}

/// Who is calling: the verified certificate a client presented over mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name when it has exactly one CN attribute (see the module
    /// documentation for why several give `None`).
    pub common_name: Option<String>,
    /// The subject as it is written: its RDNs in order, each a set of one or more
    /// attributes.
    pub subject: Vec<Vec<NameAttribute>>,
    /// The DNS names of its subject alternative names.
    pub dns_names: Vec<String>,
    /// The URI names of its subject alternative names (SPIFFE ids, for example).
    pub uri_names: Vec<String>,
    /// The IP addresses of its subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// The e-mail addresses (RFC 822 names) of its subject alternative names.
    pub email_addresses: Vec<String>,
    /// The certificate itself, DER.
    pub certificate: Vec<u8>,
}

/// The OID of the CN attribute.
const CN: &str = "2.5.4.3";

impl PeerIdentity {
    /// The identity a DER certificate names. Never fails: what cannot be decoded is
    /// left out (see the module documentation).
    pub fn from_der(der: &[u8]) -> Self {
        let mut id = Self {
            common_name: None,
            subject: Vec::new(),
            dns_names: Vec::new(),
            uri_names: Vec::new(),
            ip_addresses: Vec::new(),
            email_addresses: Vec::new(),
            certificate: der.to_vec(),
        };
        let Ok(cert) = Certificate::from_der(der) else { return id };
        let tbs = &cert.tbs_certificate;
        id.subject = tbs
            .subject
            .0
            .iter()
            .map(|rdn| {
                rdn.0
                    .iter()
                    .map(|atv| {
                        let oid = atv.oid.to_string();
                        NameAttribute { name: short_name(&oid), value: value_text(&atv.value), oid }
                    })
                    .collect()
            })
            .collect();
        let mut cns = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid.to_string() == CN);
        if let (Some(only), None) = (cns.next(), cns.next()) {
            id.common_name = string_value(&only.value);
        }
        for ext in tbs.extensions.iter().flatten() {
            if ext.extn_id.to_string() != "2.5.29.17" {
                continue;
            }
            let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) else { continue };
            for name in san.0 {
                match name {
                    GeneralName::DnsName(s) => id.dns_names.push(s.to_string()),
                    GeneralName::UniformResourceIdentifier(s) => id.uri_names.push(s.to_string()),
                    GeneralName::Rfc822Name(s) => id.email_addresses.push(s.to_string()),
                    GeneralName::IpAddress(octets) => {
                        let bytes = octets.as_bytes();
                        if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                            id.ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
                            id.ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        id
    }

    /// A name for logs and handlers: a SPIFFE id (`spiffe://` URI SAN) if there is one,
    /// else the common name, else the first DNS name, else the first URI name.
    pub fn name(&self) -> Option<&str> {
        self.uri_names
            .iter()
            .find(|u| u.starts_with("spiffe://"))
            .or(self.common_name.as_ref())
            .or_else(|| self.dns_names.first())
            .or_else(|| self.uri_names.first())
            .map(String::as_str)
    }

    /// Every value of the subject attribute `oid` (dotted), in order.
    pub fn subject_values<'a>(&'a self, oid: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.subject.iter().flatten().filter(move |a| a.oid == oid).map(|a| a.value.as_str())
    }
}

/// The common short names of subject attribute types (RFC 4514, RFC 4519).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.46" => "dnQualifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// An attribute value as a string, when its type is a string type and its bytes are
/// valid for that type.
fn string_value(v: &x509_cert::der::Any) -> Option<String> {
    let bytes = v.value();
    match v.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Tag::BmpString => BmpString::from_ucs2(bytes.to_vec()).ok().map(|s| s.to_string()),
        Tag::TeletexString => Some(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        }),
        _ => None,
    }
}

/// An attribute value for display: the string, or `#` and the hex of its DER.
fn value_text(v: &x509_cert::der::Any) -> String {
    string_value(v).unwrap_or_else(|| {
        let der = v.to_der().unwrap_or_default();
        std::iter::once("#".to_owned()).chain(der.iter().map(|b| format!("{b:02x}"))).collect()
    })
}

#[cfg(any(test, feature = "test-hooks"))]
/// Extracts an identity from arbitrary bytes, as a handshake's peer certificate would
/// be: never panics, and a CN it reports is the one CN attribute of the subject.
pub(crate) fn fuzz_identity(data: &[u8]) {
    let id = PeerIdentity::from_der(data);
    let cns: Vec<&str> = id.subject_values(CN).collect();
    if let Some(cn) = &id.common_name {
        assert_eq!(cns, [cn.as_str()], "a CN was reported that is not the subject's only CN");
    }
    let _ = id.name();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SanType};
    use x509_cert::der::asn1::SetOfVec;
    use x509_cert::name::RelativeDistinguishedName;

    fn cert(subject: &[(DnType, DnValue)], sans: Vec<SanType>) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        for (t, v) in subject {
            p.distinguished_name.push(t.clone(), v.clone());
        }
        p.subject_alt_names = sans;
        p.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    fn utf8(s: &str) -> DnValue {
        DnValue::Utf8String(s.into())
    }

    #[test]
    fn the_cn_comes_from_the_cn_attribute_not_from_bytes_that_look_like_one() {
        let forged = "\u{6}\u{3}\u{55}\u{4}\u{3}\u{c}\u{5}admin";
        let der = cert(
            &[(DnType::OrganizationName, utf8(forged)), (DnType::CommonName, utf8("mallory"))],
            vec![],
        );
        let id = PeerIdentity::from_der(&der);
        assert_eq!(id.common_name.as_deref(), Some("mallory"));
        assert_eq!(id.name(), Some("mallory"));
        assert_eq!(id.subject.len(), 2);
        assert_eq!(id.subject[0][0].name, Some("O"));
        assert_eq!(id.subject[0][0].value, forged);
        assert_eq!(id.subject[1][0].oid, "2.5.4.3");
    }

    #[test]
    fn every_string_type_of_a_cn_is_decoded() {
        let cases = [
            (DnValue::PrintableString("svc-1".try_into().unwrap()), "svc-1"),
            (DnValue::Ia5String("svc@x".try_into().unwrap()), "svc@x"),
            (DnValue::BmpString("Zoë Ω".try_into().unwrap()), "Zoë Ω"),
            (DnValue::TeletexString("plain".try_into().unwrap()), "plain"),
            (utf8("ünïcode"), "ünïcode"),
        ];
        for (value, want) in cases {
            let id = PeerIdentity::from_der(&cert(&[(DnType::CommonName, value)], vec![]));
            assert_eq!(id.common_name.as_deref(), Some(want));
        }
        // A CN of a type that is no string in this parser's reading is no CN, and shows
        // as hex.
        let id = PeerIdentity::from_der(&cert(
            &[(DnType::CommonName, DnValue::UniversalString("u".try_into().unwrap()))],
            vec![],
        ));
        assert_eq!(id.common_name, None);
    }

    #[test]
    fn several_cns_are_ambiguous_and_give_none_with_all_in_the_subject() {
        let der = cert(
            &[
                (DnType::CommonName, utf8("admin")),
                (DnType::CustomDnType(vec![2, 5, 4, 3]), utf8("mallory")),
            ],
            vec![],
        );
        let id = PeerIdentity::from_der(&der);
        assert_eq!(id.common_name, None);
        assert_eq!(id.subject_values(CN).collect::<Vec<_>>(), ["admin", "mallory"]);
        assert_eq!(id.name(), None);
    }

    #[test]
    fn a_multi_valued_rdn_is_one_set_and_its_cns_count() {
        // rcgen writes one attribute per RDN; join two into one set, re-encoded.
        let der = cert(
            &[(DnType::CommonName, utf8("a")), (DnType::OrganizationalUnitName, utf8("ops"))],
            vec![],
        );
        let mut c = Certificate::from_der(&der).unwrap();
        let joined: Vec<_> =
            c.tbs_certificate.subject.0.iter().flat_map(|r| r.0.iter().cloned()).collect();
        c.tbs_certificate.subject.0 =
            vec![RelativeDistinguishedName(SetOfVec::try_from(joined).unwrap())];
        let id = PeerIdentity::from_der(&c.to_der().unwrap());
        assert_eq!(id.subject.len(), 1);
        assert_eq!(id.subject[0].len(), 2);
        assert_eq!(id.common_name.as_deref(), Some("a"));
        assert_eq!(id.subject_values("2.5.4.11").collect::<Vec<_>>(), ["ops"]);
    }

    #[test]
    fn alternative_names_are_read_and_a_spiffe_id_names_the_peer_first() {
        let der = cert(
            &[(DnType::CommonName, utf8("web"))],
            vec![
                SanType::DnsName("web.internal".try_into().unwrap()),
                SanType::URI("https://example.test/x".try_into().unwrap()),
                SanType::URI("spiffe://prod.test/ns/web".try_into().unwrap()),
                SanType::IpAddress("10.0.0.7".parse().unwrap()),
                SanType::IpAddress("::1".parse().unwrap()),
                SanType::Rfc822Name("ops@example.test".try_into().unwrap()),
            ],
        );
        let id = PeerIdentity::from_der(&der);
        assert_eq!(id.dns_names, ["web.internal"]);
        assert_eq!(id.uri_names, ["https://example.test/x", "spiffe://prod.test/ns/web"]);
        assert_eq!(
            id.ip_addresses,
            ["10.0.0.7".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]
        );
        assert_eq!(id.email_addresses, ["ops@example.test"]);
        assert_eq!(id.name(), Some("spiffe://prod.test/ns/web"));
        assert_eq!(id.common_name.as_deref(), Some("web"));
    }

    #[test]
    fn bytes_that_are_no_certificate_give_no_names() {
        for junk in [
            &b""[..],
            b"\x30\x03\x02\x01\x00",
            &[0x30, 0x82, 0xff, 0xff, 0x06, 0x03, 0x55, 0x04, 0x03],
        ] {
            let id = PeerIdentity::from_der(junk);
            assert_eq!((id.common_name.as_deref(), id.subject.len(), id.name()), (None, 0, None));
            fuzz_identity(junk);
        }
    }
}
