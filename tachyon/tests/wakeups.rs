//! No lost wake-ups: 100,000 sleep/wake cycles. A wake lost between the sleeper's last
//! check and its `FUTEX_WAIT` leaves the sleep to the 200 ms watchdog, which the wait
//! loop counts (`BusStats::watchdog_rescues`): the count must stay 0. Each cycle is also
//! timed from the send to the sleeping receiver's return, and the percentiles printed,
//! but not asserted: on a busy machine a scheduling delay can exceed any bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::{Bus, Error, Wait};

const CYCLES: u64 = 100_000;

#[test]
fn no_wake_up_is_lost_over_100_000_cycles() {
    let dir = tempfile::Builder::new().prefix("tachyon-wakeups-").tempdir().unwrap();
    let path = dir.path().join("bus.sock").display().to_string();
    let p2 = path.clone();
    let acked = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let producer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let bus = loop {
                match Bus::connect(&p2) {
                    Ok(b) => break b,
                    Err(Error::Connect { .. }) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("{e}"),
                }
            };
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            for i in 0..CYCLES {
                while acked.load(Ordering::Acquire) < i {
                    std::hint::spin_loop();
                }
                // A random delay (none, a few spins, or a yield) so sends land on every
                // point of the receiver's way into its sleep.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                match rng % 4 {
                    0 => {}
                    1 | 2 => {
                        for _ in 0..(rng >> 8) % 2000 {
                            std::hint::spin_loop();
                        }
                    }
                    _ => std::thread::yield_now(),
                }
                let sent_at = base.elapsed().as_nanos() as u64;
                bus.send_timeout(&sent_at.to_ne_bytes(), 1, Duration::from_secs(10)).unwrap();
            }
            // Stay until the receiver has everything.
            while acked.load(Ordering::Acquire) < CYCLES {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let bus = Bus::listen_timeout(&path, 4096, Duration::from_secs(20)).unwrap();
    let mut latencies = Vec::with_capacity(CYCLES as usize);
    for i in 0..CYCLES {
        // Spin 0: announce the sleep at once, so every cycle goes through the futex.
        let msg =
            bus.acquire_rx_with(Wait::new().spin(0).timeout(Duration::from_secs(10))).unwrap();
        let now = base.elapsed().as_nanos() as u64;
        let sent_at = u64::from_ne_bytes(msg.data().try_into().unwrap());
        drop(msg);
        latencies.push(now.saturating_sub(sent_at));
        acked.store(i + 1, Ordering::Release);
    }
    producer.join().unwrap();
    latencies.sort_unstable();
    // Per ten thousand: index = (len - 1) * p / 10_000.
    let pct = |p: usize| Duration::from_nanos(latencies[(latencies.len() - 1) * p / 10_000]);
    let max = Duration::from_nanos(*latencies.last().unwrap());
    eprintln!(
        "{CYCLES} sleep/wake cycles: p50 {:?}, p99 {:?}, p99.99 {:?}, max {:?}",
        pct(5_000),
        pct(9_900),
        pct(9_999),
        max
    );
    let stats = bus.stats();
    eprintln!("receiver: {} sleeps, {} watchdog rescues", stats.sleeps, stats.watchdog_rescues);
    assert!(stats.sleeps > 0, "the receiver never slept, so nothing was tested: {stats:?}");
    assert_eq!(stats.watchdog_rescues, 0, "lost wake-ups (max cycle {max:?}): {stats:?}");
}
