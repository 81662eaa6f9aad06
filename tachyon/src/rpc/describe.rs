//! [`Description`]: what a schema-generated server answers on msg_type 0x7FFF
//! (`describe`), so a client can say exactly where it disagrees with the server.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rpc::codec;

/// Which schema a server serves: a MessagePack map on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The schema package (`package quote;`).
    pub package: String,
    /// The service's name.
    pub service: String,
    /// FNV-1a 64 of `schema`, as 16 hex digits.
    pub fingerprint: String,
    /// The package's schema in canonical form: one item per line.
    pub schema: String,
}

impl Description {
    /// A description (generated code builds it from its constants).
    pub fn new(package: &str, service: &str, fingerprint: &str, schema: &str) -> Self {
        Self {
            package: package.into(),
            service: service.into(),
            fingerprint: fingerprint.into(),
            schema: schema.into(),
        }
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of four strings always encodes.
        codec::encode(self).unwrap_or_default()
    }

    /// Decodes a `describe` reply.
    ///
    /// # Errors
    /// [`Error::Codec`] for anything but a description.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        codec::decode(bytes)
    }

    /// The schema lines only one side has: `(only the server's, only ours)`.
    pub fn differences(&self, ours: &Description) -> (Vec<String>, Vec<String>) {
        let theirs: Vec<&str> = self.schema.lines().collect();
        let mine: Vec<&str> = ours.schema.lines().collect();
        let only_theirs = theirs.iter().filter(|l| !mine.contains(l)).map(|l| (*l).to_string());
        let only_mine = mine.iter().filter(|l| !theirs.contains(l)).map(|l| (*l).to_string());
        (only_theirs.collect(), only_mine.collect())
    }

    /// Checks that `self` (the server's) describes the same service and schema as `ours`.
    ///
    /// # Errors
    /// [`Error::Protocol`] naming the service and every line the two sides disagree on.
    pub fn verify(&self, ours: &Description) -> Result<()> {
        if self.package == ours.package
            && self.service == ours.service
            && self.fingerprint == ours.fingerprint
        {
            return Ok(());
        }
        let (theirs, mine) = self.differences(ours);
        let mut msg = format!(
            "the server serves {}.{} (fingerprint {}), this client was generated for {}.{} (fingerprint {})",
            self.package, self.service, self.fingerprint, ours.package, ours.service, ours.fingerprint
        );
        for l in theirs {
            msg.push_str("\n  server only: ");
            msg.push_str(&l);
        }
        for l in mine {
            msg.push_str("\n  client only: ");
            msg.push_str(&l);
        }
        Err(Error::Protocol(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_names_the_lines_that_differ() {
        let a = Description::new("q", "S", "1", "package q;\nstruct A { x: u8; }\n");
        let b = Description::new("q", "S", "2", "package q;\nstruct A { x: u8; y?: u8; }\n");
        assert!(a.verify(&a.clone()).is_ok());
        let e = a.verify(&b).unwrap_err().to_string();
        assert!(e.contains("server only: struct A { x: u8; }"), "{e}");
        assert!(e.contains("client only: struct A { x: u8; y?: u8; }"), "{e}");
        assert_eq!(Description::decode(&a.encode()).unwrap(), a);
    }
}
