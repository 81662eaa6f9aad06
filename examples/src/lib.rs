//! A small quote service written with `#[tachyon_rpc]`, shared by the examples.

use serde::{Deserialize, Serialize};
use tachyon::rpc::{Dispatcher, ServerError};
use tachyon_macros::{dispatcher, tachyon_rpc};

/// Asks for a quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteReq {
    /// Ticker symbol.
    pub symbol: String,
    /// Quantity wanted.
    pub qty: u32,
}

/// A quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// Ticker symbol.
    pub symbol: String,
    /// Best bid.
    pub bid: f64,
    /// Best ask.
    pub ask: f64,
    /// Quantity quoted.
    pub qty: u32,
}

/// Quotes a symbol (typed: MessagePack in and out).
///
/// # Errors
/// For an empty symbol or a zero quantity.
#[tachyon_rpc(msg_type = 1)]
pub fn quote(req: QuoteReq) -> Result<Quote, ServerError> {
    if req.symbol.is_empty() || req.qty == 0 {
        return Err(ServerError::from("symbol must be non-empty and qty positive"));
    }
    let base = req.symbol.bytes().map(f64::from).sum::<f64>();
    Ok(Quote { symbol: req.symbol, bid: base - 0.01, ask: base + 0.01, qty: req.qty })
}

/// Echoes raw bytes (zero-copy request).
#[tachyon_rpc(msg_type = 2)]
pub fn echo(req: &[u8]) -> Vec<u8> {
    req.to_vec()
}

/// The service's dispatcher.
pub fn service() -> Dispatcher {
    dispatcher![quote, echo]
}
