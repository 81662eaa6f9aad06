//! The floor: two processes bouncing a counter through two cache lines of shared memory.
//! Nothing can round-trip faster between these two cores.

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use memmap2::MmapMut;

/// Two counters, each on its own 128-byte line pair (no false sharing).
const PING: usize = 0;
const PONG: usize = 128;

fn map(path: &str) -> MmapMut {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open shm file");
    f.set_len(4096).expect("size shm file");
    // SAFETY: a private /dev/shm file of this benchmark, sized above; both processes only
    // access it through the atomics below.
    unsafe { MmapMut::map_mut(&f) }.expect("mmap shm file")
}

fn counter(m: &MmapMut, off: usize) -> &AtomicU64 {
    // SAFETY: `off` + 8 is inside the 4096-byte page-aligned mapping and 8-aligned; the
    // mapping outlives the returned reference.
    unsafe { AtomicU64::from_ptr(m.as_ptr().add(off).cast_mut().cast()) }
}

/// Parent side: `total` round trips, returning the last `total - warmup` in ns.
pub fn rtt(total: usize, warmup: usize) -> Vec<u64> {
    let path = format!("/dev/shm/tachyon-bench-floor-{}", std::process::id());
    let m = map(&path);
    let (to_child, from_child) = (counter(&m, PING), counter(&m, PONG));
    to_child.store(0, Ordering::SeqCst);
    from_child.store(0, Ordering::SeqCst);
    let mut peer = super::child(&["floor", &path, &total.to_string()]);
    let mut out = Vec::with_capacity(total - warmup);
    for i in 1..=total as u64 {
        let t = Instant::now();
        to_child.store(i, Ordering::Release);
        while from_child.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        if i as usize > warmup {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    assert!(peer.wait().expect("wait floor child").success());
    let _ = std::fs::remove_file(&path);
    out
}

/// Child side: echo every ping into pong.
pub fn child(path: &str, total: u64) {
    let m = map(path);
    let (to_child, from_child) = (counter(&m, PING), counter(&m, PONG));
    for i in 1..=total {
        while to_child.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        from_child.store(i, Ordering::Release);
    }
}
