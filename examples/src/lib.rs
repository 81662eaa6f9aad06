//! The demo's quote service, defined once in `schemas/quote.tachyon` and implemented
//! here through the generated `Quotes` trait. Python and Node call it through their own
//! generated clients (`examples/generated/`).

use tachyon::rpc::{Dispatcher, ServerError};

tachyon::include_schema!("quote");

pub use quote::{Quote, QuoteReq, Quotes, QuotesClient, Side};

/// The demo's implementation of the `Quotes` service.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuoteService;

impl Quotes for QuoteService {
    fn quote(&self, req: QuoteReq) -> Result<Quote, ServerError> {
        if req.symbol.is_empty() || req.qty == 0 {
            return Err(quote::quotes::errors::bad_order(
                "symbol must be non-empty and qty positive",
            ));
        }
        let base = req.symbol.bytes().map(f64::from).sum::<f64>();
        let spread = if req.side == Side::Sell { 0.02 } else { 0.01 };
        Ok(Quote { symbol: req.symbol, bid: base - spread, ask: base + spread, qty: req.qty })
    }

    fn echo(&self, req: &[u8]) -> Result<Vec<u8>, ServerError> {
        Ok(req.to_vec())
    }
}

/// The service's dispatcher: `quote`, `echo` and the generated `describe`.
pub fn service() -> Dispatcher {
    quote::quotes::dispatcher(QuoteService)
}
