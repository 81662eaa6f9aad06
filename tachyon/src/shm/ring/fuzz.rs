//! The fuzz targets' hostile producers, over both slot formats.

use super::{state, Arc, Arena, Consumer, Ordering, MSG_HEADER_SIZE};

/// Plays a hostile producer: arbitrary `data` decides the published head, the starting
/// tail and a series of message headers, then a consumer drains the ring. Must never
/// panic nor read outside the mapping; errors are the expected outcome. Used by the
/// `cargo fuzz` target and by tests.
///
/// Layout of `data`: `head u64`, `tail u64`, then 13-byte records of
/// `slot u8` (header index, times 64) `size u32`, `type_id u32`, `reserved_size u32`.
#[doc(hidden)]
pub fn fuzz_consumer(data: &[u8]) {
    const CAP: usize = 4096;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let (head, tail) = match data {
        h if h.len() >= 16 => (word(&data[0..8]), word(&data[8..16])),
        _ => return,
    };
    let arena = Arc::new(Arena::create(CAP).expect("memfd_create works in tests"));
    arena.tail().store(tail, Ordering::Relaxed);
    for rec in data[16..].chunks_exact(13) {
        let u = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        let at = (rec[0] as usize * MSG_HEADER_SIZE) % CAP;
        arena.write_msg_header(at, u(1), u(5), u(9), Some(0));
    }
    arena.head().store(head, Ordering::Release);
    let mut consumer = Consumer::new(arena.clone());
    for _ in 0..256 {
        let at = consumer.position();
        match consumer.peek(at) {
            Ok(Some(slot)) => {
                let sum: u64 = consumer.payload(&slot).iter().map(|&b| u64::from(b)).sum();
                std::hint::black_box(sum);
                consumer.advance(slot.end);
            }
            Ok(None) => return,
            Err(_) => {
                assert_eq!(
                    arena.state(),
                    state::FATAL_ERROR,
                    "an error must leave the arena fatal or dead"
                );
                return;
            }
        }
    }
}

/// [`fuzz_consumer`] for the fast mode: a hostile producer that forges commit words.
/// Layout of `data`: `tail u64`, then 14-byte records of `slot u8` (header index, times
/// 64), `lap u8` (the commit word names the slot in the tail's lap plus this many),
/// `size u32`, `type_id u32`, `reserved_size u32`.
#[doc(hidden)]
pub fn fuzz_consumer_fast(data: &[u8]) {
    const CAP: usize = 4096;
    let Some((tail, records)) = data.split_first_chunk::<8>() else { return };
    let tail = u64::from_le_bytes(*tail);
    let arena = Arena::create(CAP).expect("memfd_create works in tests");
    arena.set_fast(true);
    let arena = Arc::new(arena);
    arena.tail().store(tail, Ordering::Relaxed);
    let base = tail & !(CAP as u64 - 1);
    for rec in records.chunks_exact(14) {
        let u = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        let at = (rec[0] as usize * MSG_HEADER_SIZE) % CAP;
        arena.write_msg_header(at, u(2), u(6), u(10), Some(0));
        let commit = base.wrapping_add(u64::from(rec[1]) * CAP as u64 + at as u64 + 1);
        arena.commit_word(at).store(commit, Ordering::Release);
    }
    let mut consumer = Consumer::new(arena.clone());
    for round in 0..256 {
        // Alternate single reads and read-ahead batches.
        let mut at = consumer.position();
        let mut seen = 0;
        loop {
            match consumer.peek(at) {
                Ok(Some(slot)) => {
                    let sum: u64 = consumer.payload(&slot).iter().map(|&b| u64::from(b)).sum();
                    std::hint::black_box(sum);
                    at = slot.end;
                    seen += 1;
                    if round % 2 == 0 || seen == 64 {
                        break;
                    }
                }
                Ok(None) if seen > 0 => break,
                Ok(None) => return,
                Err(_) => {
                    assert_eq!(
                        arena.state(),
                        state::FATAL_ERROR,
                        "an error must leave the arena fatal"
                    );
                    return;
                }
            }
        }
        consumer.advance(at);
    }
}
