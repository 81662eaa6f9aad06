//! A multi-client RPC server with graceful shutdown: Ctrl-C (or SIGTERM) stops accepting,
//! lets every client's session end, removes the socket, and exits 0.
//!
//! ```sh
//! cargo run --example rpc_server -- /tmp/quotes.sock
//! cargo run --example rpc_client -- /tmp/quotes.sock      # in another terminal
//! ```

#[path = "shared/quote.rs"]
mod quote;

use std::sync::Arc;

use tachyon::dispatcher;
use tachyon::rpc::{RpcServer, ServerOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/tmp/tachyon-quotes.sock".to_owned());
    let server = RpcServer::bind(&path, ServerOptions::default().max_clients(16))?;
    let stop = server.stop_handle();
    // The handler runs on ctrlc's own thread; stopping only sets a flag the server polls.
    ctrlc::set_handler(move || stop.stop())?;
    println!(
        "serving quote (msg_type {}) and echo (msg_type {}) on {path}",
        quote::quote::MSG_TYPE,
        quote::echo::MSG_TYPE
    );
    server.serve(Arc::new(dispatcher![quote::quote, quote::echo]))?;
    println!("stopped: every client session ended, {path} removed");
    Ok(())
}
