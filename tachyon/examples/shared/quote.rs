//! The quote service both `rpc_server` and `rpc_client` use: two `#[tachyon_rpc]`
//! endpoints, a typed one and a raw one.
// The client example calls the generated modules, never the functions themselves.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use tachyon::rpc::ServerError;
use tachyon::tachyon_rpc;

/// A quote request.
#[derive(Debug, Serialize, Deserialize)]
pub struct QuoteReq {
    /// The instrument.
    pub symbol: String,
    /// How many.
    pub qty: u32,
}

/// A quote.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Quote {
    /// Best bid.
    pub bid: f64,
    /// Best ask.
    pub ask: f64,
}

/// Quotes a symbol (typed: MessagePack in and out).
#[tachyon_rpc(msg_type = 1)]
pub fn quote(req: QuoteReq) -> Result<Quote, ServerError> {
    if req.qty == 0 {
        return Err(ServerError::new(400, "qty must be at least 1"));
    }
    let mid = 100.0 + f64::from(u32::try_from(req.symbol.len()).unwrap_or(u32::MAX));
    Ok(Quote { bid: mid - 0.01, ask: mid + 0.01 })
}

/// Echoes raw bytes (read in place from the request ring).
#[tachyon_rpc(msg_type = 2)]
pub fn echo(req: &[u8]) -> Vec<u8> {
    req.to_vec()
}
