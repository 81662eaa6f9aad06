//! Process A of the README's first example: listens, receives until the producer closes.
//!
//! ```sh
//! cargo run --example consumer -- /tmp/quotes.sock &
//! cargo run --example producer -- /tmp/quotes.sock
//! ```

use std::time::Duration;

use tachyon::{Bus, Error};

fn main() -> tachyon::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/tmp/tachyon-demo.sock".to_owned());
    // A 1 MiB ring; wait at most 10 s for the producer.
    let bus = Bus::listen_timeout(&path, 1 << 20, Duration::from_secs(10))?;
    loop {
        match bus.recv_timeout(Duration::from_secs(5)) {
            Ok(msg) => {
                println!("got {:?} (type {})", String::from_utf8_lossy(msg.data()), msg.type_id());
            }
            // The producer closed its bus after sending: everything it sent arrived.
            Err(Error::PeerClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
