//! Calls the `rpc_server` example: a typed call through the generated client, a raw
//! echo, a deadline, and the structured error a failing handler sends back.

#[path = "shared/quote.rs"]
mod quote;

use std::time::Duration;

use tachyon::rpc::RpcBus;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/tmp/tachyon-quotes.sock".to_owned());
    let client = RpcBus::connect(&path)?;
    let q = quote::quote::call(&client, &quote::QuoteReq { symbol: "TCHY".into(), qty: 100 })?;
    println!("quote TCHY x100 -> bid {:.2} ask {:.2}", q.bid, q.ask);
    let echoed = quote::echo::call_timeout(&client, b"ping", Duration::from_secs(1))?;
    println!("echo -> {}", String::from_utf8_lossy(&echoed));
    match quote::quote::call(&client, &quote::QuoteReq { symbol: "TCHY".into(), qty: 0 }) {
        Err(tachyon::Error::Rpc(e)) => println!("quote x0 -> error {}: {}", e.code, e.message),
        other => println!("quote x0 -> unexpected {other:?}"),
    }
    Ok(())
}
