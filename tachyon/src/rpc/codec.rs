//! The default codec of typed handlers: MessagePack via `rmp-serde`, structs as maps
//! (field names on the wire), so Python and Node read them as dicts and objects.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Encodes `value`, appending to `out`.
///
/// # Errors
/// [`Error::Codec`] if serde refuses the value.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    rmp_serde::encode::write_named(out, value).map_err(|e| Error::Codec(e.to_string()))
}

/// Encodes `value` into a new buffer.
///
/// # Errors
/// [`Error::Codec`] if serde refuses the value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a `T` from `bytes`.
///
/// # Errors
/// [`Error::Codec`] if the bytes are not a MessagePack `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Codec(e.to_string()))
}
