//! Process B of the README's first example: connects, sends, closes.

use std::time::Duration;

use tachyon::{make_type_id, Bus, Error};

fn main() -> tachyon::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/tmp/tachyon-demo.sock".to_owned());
    // Connect fails at once while nobody listens: retry for a while.
    let bus = loop {
        match Bus::connect(&path) {
            Err(Error::Connect { .. }) => std::thread::sleep(Duration::from_millis(10)),
            other => break other?,
        }
    };
    bus.send(b"hello", make_type_id(0, 1))?; // Err(Full) if the ring is full
    bus.send_timeout(b"again", 2, Duration::from_secs(1))?; // waits for room
                                                            // Zero copy: write in place, commit; dropping the guard instead rolls back.
    let mut tx = bus.acquire_tx(64)?;
    tx.bytes_mut()[..3].copy_from_slice(b"abc");
    tx.commit(3, 7)?;
    Ok(())
}
