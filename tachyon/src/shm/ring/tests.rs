//! Ring tests: one producer and one consumer over one arena, in one process.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::shm::layout::SKIP_MARKER;

fn pair(cap: usize) -> (Producer, Consumer, Arc<Arena>) {
    let arena = Arc::new(Arena::create(cap).unwrap());
    (Producer::new(arena.clone()), Consumer::new(arena.clone()), arena)
}

fn send(p: &mut Producer, data: &[u8], type_id: u32) -> Result<()> {
    let r = p.acquire(data.len())?;
    p.payload_mut(&r)[..data.len()].copy_from_slice(data);
    p.commit(r, data.len(), type_id, None)?;
    p.flush();
    Ok(())
}

fn recv(c: &mut Consumer) -> Result<Option<(Vec<u8>, u32)>> {
    let at = c.position();
    Ok(c.peek(at)?.map(|s| {
        let out = (c.payload(&s).to_vec(), s.type_id);
        c.advance(s.end);
        out
    }))
}

#[test]
fn wrap_around_writes_a_skip_marker_and_the_consumer_follows_it() {
    let (mut p, mut c, arena) = pair(1024);
    // 3 slots of 256 (192-byte payloads): head ends at 768, 256 left before the end.
    for i in 0..3 {
        send(&mut p, &[i; 192], i.into()).unwrap();
    }
    for i in 0..3 {
        assert_eq!(recv(&mut c).unwrap().unwrap(), (vec![i; 192], i.into()));
    }
    // A 320-byte slot does not fit in the last 256 bytes: skip marker at 768, slot at 0.
    send(&mut p, &[9; 250], 9).unwrap();
    assert_eq!(arena.read_msg_header(768).size, SKIP_MARKER);
    assert_eq!(arena.read_msg_header(0).size, 250);
    assert_eq!(arena.head().load(Ordering::Relaxed), 768 + 256 + 320);
    assert_eq!(recv(&mut c).unwrap().unwrap(), (vec![9; 250], 9));
    assert_eq!(c.position(), 768 + 256 + 320);
}

#[test]
fn full_ring_reports_full_with_sizes_and_recovers() {
    let (mut p, mut c, _) = pair(256);
    for _ in 0..4 {
        send(&mut p, &[], 0).unwrap();
    }
    match p.acquire(0) {
        Err(Error::Full { needed: 64, free: 0 }) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    recv(&mut c).unwrap().unwrap();
    // Every commit publishes the tail, so the producer sees each freed slot at once.
    for _ in 0..3 {
        recv(&mut c).unwrap().unwrap();
    }
    assert!(recv(&mut c).unwrap().is_none());
    send(&mut p, b"again", 1).unwrap();
}

#[test]
fn too_large_is_not_full() {
    let (mut p, _, _) = pair(256);
    assert!(matches!(p.acquire(193), Err(Error::MessageTooLarge { size: 193, max: 192 })));
    assert!(p.acquire(192).is_ok());
    assert!(matches!(p.acquire(usize::MAX), Err(Error::MessageTooLarge { .. })));
}

#[test]
fn rollback_leaves_no_trace() {
    let (mut p, mut c, arena) = pair(1024);
    {
        // Reserved and written, never committed.
        let r = p.acquire(100).unwrap();
        p.payload_mut(&r).fill(0xAA);
    }
    p.flush();
    assert_eq!(arena.head().load(Ordering::Relaxed), 0);
    assert!(recv(&mut c).unwrap().is_none());
    send(&mut p, b"after", 2).unwrap();
    assert_eq!(recv(&mut c).unwrap().unwrap(), (b"after".to_vec(), 2));
}

#[test]
fn committed_size_smaller_than_reserved_keeps_the_reserved_slot() {
    let (mut p, mut c, arena) = pair(1024);
    let r = p.acquire(500).unwrap();
    p.payload_mut(&r)[..3].copy_from_slice(b"abc");
    p.commit(r, 3, 5, None).unwrap();
    p.flush();
    let h = arena.read_msg_header(0);
    assert_eq!((h.size, h.reserved_size), (3, 576));
    assert_eq!(recv(&mut c).unwrap().unwrap(), (b"abc".to_vec(), 5));
    assert_eq!(c.position(), 576);
}

#[test]
fn commit_larger_than_reserved_is_refused() {
    let (mut p, mut c, _) = pair(1024);
    let r = p.acquire(10).unwrap();
    assert!(matches!(p.commit(r, 11, 0, None), Err(Error::InvalidSize { size: 11, max: 10 })));
    p.flush();
    assert!(recv(&mut c).unwrap().is_none());
}

#[test]
fn zero_length_messages_round_trip() {
    let (mut p, mut c, _) = pair(1024);
    for t in 0..10 {
        send(&mut p, &[], t).unwrap();
    }
    for t in 0..10 {
        assert_eq!(recv(&mut c).unwrap().unwrap(), (vec![], t));
    }
    assert!(recv(&mut c).unwrap().is_none());
}

#[test]
fn batch_peek_reads_ahead_and_commits_once() {
    let (mut p, mut c, arena) = pair(1 << 14);
    for i in 0..40u32 {
        let r = p.acquire(4).unwrap();
        p.payload_mut(&r).copy_from_slice(&i.to_le_bytes());
        p.commit(r, 4, i, None).unwrap();
    }
    // 32 commits published head automatically, the other 8 wait for flush.
    assert_eq!(arena.head().load(Ordering::Relaxed), 32 * 128);
    p.flush();
    let mut at = c.position();
    let mut seen = Vec::new();
    while let Some(s) = c.peek(at).unwrap() {
        seen.push(u32::from_le_bytes(c.payload(&s).try_into().unwrap()));
        at = s.end;
    }
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    assert_eq!(arena.tail().load(Ordering::Relaxed), 0, "peeking commits nothing");
    c.advance(at);
    assert_eq!(arena.tail().load(Ordering::Relaxed), 40 * 128);
}

#[test]
fn ring_holding_fewer_than_32_messages_never_stalls() {
    // 4 slots of 64 bytes: upstream's every-32 tail publication would stall at the 5th.
    let (mut p, mut c, _) = pair(256);
    let mut next = 0u32;
    for i in 0..1000u32 {
        let mut empty_polls = 0;
        loop {
            match send(&mut p, &[], i) {
                Ok(()) => break,
                Err(Error::Full { .. }) => {
                    if let Some((_, t)) = recv(&mut c).unwrap() {
                        assert_eq!(t, next);
                        next += 1;
                    } else {
                        // A full ring always holds a message; an empty poll would mean the
                        // consumer had released bytes without publishing them.
                        empty_polls += 1;
                        assert!(empty_polls < 2, "producer stalled at message {i}");
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn drop_publishes_pending_indices() {
    let (mut p, c, arena) = pair(1024);
    let r = p.acquire(1).unwrap();
    p.commit(r, 1, 0, None).unwrap();
    drop(p);
    assert_eq!(arena.head().load(Ordering::Relaxed), 128);
    drop(c);
}

// ---- hostile peer: corrupt each header field in a live mapping --------------------

fn with_one_message() -> (Producer, Consumer, Arc<Arena>) {
    let (mut p, c, a) = pair(1024);
    send(&mut p, b"hello", 1).unwrap();
    (p, c, a)
}

fn expect_corrupted(c: &mut Consumer, arena: &Arena) {
    let at = c.position();
    match c.peek(at) {
        Err(Error::Corrupted(_)) => {}
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert_eq!(arena.state(), state::FATAL_ERROR);
    // Afterwards the bus reports the fatal state, also to the producer side.
    assert!(matches!(c.peek(at), Err(Error::PeerDead(_) | Error::Corrupted(_))));
}

#[test]
fn hostile_reserved_size_not_multiple_of_64() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, 5, 1, 100, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_reserved_size_below_header() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, 0, 1, 0, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_reserved_size_above_capacity() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, 5, 1, 1 << 20, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_size_beyond_slot() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, 65, 1, 128, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_size_u32_max_minus_one() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, u32::MAX - 1, 1, 128, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_slot_past_published_head() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, 5, 1, 512, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_slot_past_ring_end() {
    let (mut p, mut c, a) = pair(1024);
    for _ in 0..7 {
        send(&mut p, &[], 0).unwrap();
        recv(&mut c).unwrap().unwrap();
    }
    send(&mut p, &[], 0).unwrap();
    // Message at 448; claim it runs 640 bytes, past the 1024-byte end.
    a.head().store(448 + 640, Ordering::Release);
    a.write_msg_header(448, 5, 1, 640, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_skip_marker_past_head() {
    let (_p, mut c, a) = with_one_message();
    a.write_msg_header(0, SKIP_MARKER, 0, 0, None);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_head_more_than_a_ring_ahead() {
    let (_p, mut c, a) = pair(1024);
    a.head().store(4096, Ordering::Release);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_head_behind_tail() {
    let (mut p, mut c, a) = pair(1024);
    send(&mut p, b"x", 0).unwrap();
    recv(&mut c).unwrap().unwrap();
    a.head().store(0, Ordering::Release);
    expect_corrupted(&mut c, &a);
}

#[test]
fn hostile_tail_ahead_of_head_is_caught_by_the_producer() {
    let (mut p, _c, a) = pair(256);
    for _ in 0..4 {
        send(&mut p, &[], 0).unwrap();
    }
    a.tail().store(u64::MAX - 5, Ordering::Release);
    assert!(matches!(p.acquire(0), Err(Error::Corrupted(_))));
    assert_eq!(a.state(), state::FATAL_ERROR);
    assert!(matches!(p.acquire(0), Err(Error::PeerDead(_))));
}

#[test]
fn fatal_state_set_by_peer_is_peer_dead() {
    let (mut p, mut c, a) = pair(1024);
    a.set_fatal();
    assert!(matches!(p.acquire(0), Err(Error::PeerDead(_))));
    assert!(matches!(c.peek(0), Err(Error::PeerDead(_))));
}

#[test]
fn hostile_misaligned_starting_tail_is_corruption_not_a_panic() {
    // Found by `make fuzz`: head 10, tail 1.
    let mut v = 10u64.to_le_bytes().to_vec();
    v.extend(1u64.to_le_bytes());
    fuzz_consumer(&v);
    let arena = Arc::new(Arena::create(1024).unwrap());
    arena.tail().store(1, Ordering::Relaxed);
    arena.head().store(129, Ordering::Relaxed);
    let mut c = Consumer::new(arena.clone());
    expect_corrupted(&mut c, &arena);
}

#[test]
fn hostile_misaligned_starting_head_makes_the_producer_report_a_dead_peer() {
    let arena = Arc::new(Arena::create(1024).unwrap());
    arena.head().store(3, Ordering::Relaxed);
    arena.tail().store(3, Ordering::Relaxed);
    let mut p = Producer::new(arena.clone());
    assert!(matches!(p.acquire(8), Err(Error::PeerDead(_))));
    assert_eq!(arena.state(), state::FATAL_ERROR);
}

#[test]
fn fuzz_entry_point_survives_edge_inputs() {
    fuzz_consumer(&[]);
    fuzz_consumer(&[0xFF; 16]);
    let mut v = vec![0u8; 16];
    v[..8].copy_from_slice(&4096u64.to_le_bytes());
    v.extend([0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
    fuzz_consumer(&v);
}

// ---- property test against a model queue ------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Acquire `max`, commit `len` (clamped to max), with or without flush.
    Send {
        max: usize,
        len: usize,
        flush: bool,
    },
    /// Acquire and roll back.
    Rollback {
        max: usize,
    },
    /// Receive one message (if the ring shows one).
    Recv,
    /// Drain up to n messages in one batch.
    Drain {
        n: usize,
    },
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..600, 0usize..600, any::<bool>()).prop_map(|(max, len, flush)| Op::Send { max, len, flush }),
        1 => (0usize..600).prop_map(|max| Op::Rollback { max }),
        3 => Just(Op::Recv),
        2 => (1usize..40).prop_map(|n| Op::Drain { n }),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_a_model_queue(ops in prop::collection::vec(op(), 1..300), cap_log in 8u32..12) {
        let (mut p, mut c, _) = pair(1 << cap_log);
        let mut published: VecDeque<(Vec<u8>, u32)> = VecDeque::new();
        let mut unpublished: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut seq: u32 = 0;
        for op in ops {
            match op {
                Op::Send { max, len, flush } => {
                    let len = len.min(max);
                    match p.acquire(max) {
                        Ok(r) => {
                            seq += 1;
                            let data: Vec<u8> = (0..len).map(|i| (seq as usize + i) as u8).collect();
                            p.payload_mut(&r)[..len].copy_from_slice(&data);
                            p.commit(r, len, seq, None).unwrap();
                            unpublished.push((data, seq));
                            if unpublished.len() == 32 || flush {
                                if flush { p.flush(); }
                                published.extend(unpublished.drain(..));
                            }
                        }
                        // A full ring flushes pending commits so the consumer can drain them.
                        Err(Error::Full { .. }) => published.extend(unpublished.drain(..)),
                        Err(Error::MessageTooLarge { .. }) => {}
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Rollback { max } => {
                    match p.acquire(max) {
                        Ok(r) => {
                            p.payload_mut(&r).fill(0xEE);
                        }
                        Err(Error::Full { .. }) => published.extend(unpublished.drain(..)),
                        Err(_) => {}
                    }
                }
                Op::Recv => {
                    let got = recv(&mut c).unwrap();
                    prop_assert_eq!(got, published.pop_front());
                }
                Op::Drain { n } => {
                    let mut at = c.position();
                    let mut got = Vec::new();
                    while got.len() < n {
                        match c.peek(at).unwrap() {
                            Some(s) => { got.push((c.payload(&s).to_vec(), s.type_id)); at = s.end; }
                            None => break,
                        }
                    }
                    let want: Vec<_> = published.drain(..got.len().min(published.len())).collect();
                    prop_assert_eq!(&got, &want);
                    if !got.is_empty() { c.advance(at); }
                }
                Op::Flush => {
                    p.flush();
                    published.extend(unpublished.drain(..));
                }
            }
        }
        p.flush();
        published.extend(unpublished.drain(..));
        while let Some(m) = recv(&mut c).unwrap() {
            prop_assert_eq!(Some(m), published.pop_front());
        }
        prop_assert!(published.is_empty(), "lost {} messages", published.len());
    }

    #[test]
    fn hostile_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 16..400)) {
        fuzz_consumer(&data);
    }
}

// ---- fast mode (both peers ours): per-slot commit words ----------------------------

fn fast_pair(cap: usize) -> (Producer, Consumer, Arc<Arena>) {
    let arena = Arena::create(cap).unwrap();
    arena.set_fast(true);
    let arena = Arc::new(arena);
    assert_eq!(arena.mode(), RingMode::Fast);
    (Producer::new(arena.clone()), Consumer::new(arena.clone()), arena)
}

#[test]
fn fast_small_messages_take_one_line() {
    let (mut p, mut c, arena) = fast_pair(4096);
    for i in 0..5u8 {
        let r = p.acquire(32).unwrap();
        p.payload_mut(&r).fill(i);
        p.commit(r, 32, u32::from(i), None).unwrap();
    }
    // Not flushed: nothing is published yet (the commit words are written at flush).
    assert!(recv(&mut c).unwrap().is_none());
    p.flush();
    assert_eq!(arena.head().load(Ordering::Relaxed), 5 * 64, "flush publishes head too");
    for i in 0..5u8 {
        assert_eq!(recv(&mut c).unwrap().unwrap(), (vec![i; 32], u32::from(i)));
        assert_eq!(c.position(), 64 * (u64::from(i) + 1), "one 64-byte line per message");
    }
    assert!(recv(&mut c).unwrap().is_none());
}

#[test]
fn fast_wrap_around_and_the_guard_line() {
    let (mut p, mut c, arena) = fast_pair(1024);
    // Usable room is 1024 - 64: fifteen 64-byte slots fit, the sixteenth does not.
    for i in 0..15u32 {
        send(&mut p, &i.to_le_bytes(), i).unwrap();
    }
    assert!(matches!(p.acquire(0), Err(Error::Full { needed: 64, free: 0 })));
    assert!(matches!(
        p.acquire(RingMode::Fast.max_payload(1024) + 1),
        Err(Error::MessageTooLarge { max: 928, .. })
    ));
    for i in 0..15u32 {
        assert_eq!(recv(&mut c).unwrap().unwrap(), (i.to_le_bytes().to_vec(), i));
    }
    // Head at 960: a 128-byte slot does not fit before the end; skip marker, then 0.
    send(&mut p, &[7; 90], 7).unwrap();
    assert_eq!(arena.read_msg_header(960).size, SKIP_MARKER);
    assert_eq!(arena.read_msg_header(0).size, 90);
    assert_eq!(recv(&mut c).unwrap().unwrap(), (vec![7; 90], 7));
    assert_eq!(c.position(), 1024 + 128);
}

#[test]
fn fast_stale_bytes_that_look_like_a_commit_are_never_read_as_published() {
    // Every payload word is the commit word a header at that spot would carry one lap
    // later. Without the producer clearing the next slot's commit word, the consumer
    // would take such a word for a published message.
    const CAP: usize = 1024;
    let (mut p, mut c, _) = fast_pair(CAP);
    let mut sizes = (1..=13usize).cycle().map(|k| (k * 37) % 300);
    let mut sent = VecDeque::new();
    for seq in 0..3000u32 {
        let size = sizes.next().unwrap();
        let r = match p.acquire(size) {
            Ok(r) => r,
            Err(Error::Full { .. }) => {
                while let Some(m) = recv(&mut c).unwrap() {
                    assert_eq!(Some(m), sent.pop_front());
                }
                p.acquire(size).unwrap()
            }
            Err(e) => panic!("{e}"),
        };
        // The payload's first byte sits at counter `start`; fill each 8-byte word at a
        // counter q with q % 64 == 24 with `q - 24 + CAP + 1`.
        let start = p.head + r.skip + crate::shm::layout::fast::PAYLOAD as u64;
        let payload = p.payload_mut(&r);
        for (i, chunk) in payload.chunks_exact_mut(8).enumerate() {
            let q = start + 8 * i as u64;
            let word = if q % 64 == 24 { q - 24 + CAP as u64 + 1 } else { q };
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let data = payload.to_vec();
        p.commit(r, size, seq, None).unwrap();
        sent.push_back((data[..size].to_vec(), seq));
        if seq % 5 == 0 {
            p.flush();
        }
        if seq % 3 == 0 {
            while let Some(m) = recv(&mut c).unwrap() {
                assert_eq!(Some(m), sent.pop_front());
            }
        }
    }
    p.flush();
    while let Some(m) = recv(&mut c).unwrap() {
        assert_eq!(Some(m), sent.pop_front());
    }
    assert!(sent.is_empty());
}

/// One fast-mode message of 5 bytes at 0, then a consumer.
fn fast_with_one_message() -> (Producer, Consumer, Arc<Arena>) {
    let (mut p, c, a) = fast_pair(1024);
    send(&mut p, b"hello", 1).unwrap();
    (p, c, a)
}

#[test]
fn fast_hostile_headers_behind_a_valid_commit_word_are_corruption() {
    for (size, reserved) in
        [(5, 100), (0, 0), (5, 1 << 20), (33, 64), (u32::MAX - 1, 128), (5, 1024)]
    {
        let (_p, mut c, a) = fast_with_one_message();
        a.write_msg_header(0, size, 1, reserved, None);
        expect_corrupted(&mut c, &a);
    }
    // A skip marker at the ring's start.
    let (_p, mut c, a) = fast_with_one_message();
    a.write_msg_header(0, SKIP_MARKER, 0, 0, None);
    expect_corrupted(&mut c, &a);
    // A slot claimed to run past the ring's end.
    let (_p, mut c, a) = fast_pair(1024);
    a.write_msg_header(896, 5, 1, 192, None);
    a.commit_word(896).store(897, Ordering::Release);
    c.advance(896);
    expect_corrupted(&mut c, &a);
    // A misaligned starting tail.
    let arena = Arena::create(1024).unwrap();
    arena.set_fast(true);
    let arena = Arc::new(arena);
    arena.tail().store(8, Ordering::Relaxed);
    let mut c = Consumer::new(arena.clone());
    expect_corrupted(&mut c, &arena);
}

#[test]
fn fast_published_slots_running_a_ring_ahead_are_corruption() {
    let (_p, mut c, a) = fast_pair(1024);
    // Forge fifteen published 64-byte slots, then one more: a batch reader must stop.
    for k in 0..16u64 {
        a.write_msg_header(k as usize * 64, 0, 1, 64, None);
        a.commit_word(k as usize * 64).store(k * 64 + 1, Ordering::Release);
    }
    let mut at = c.position();
    let mut n = 0;
    loop {
        match c.peek(at) {
            Ok(Some(s)) => {
                at = s.end;
                n += 1;
            }
            Err(Error::Corrupted(_)) => break,
            other => panic!("expected Corrupted after a ring, got {other:?}"),
        }
    }
    assert_eq!(n, 15);
    assert_eq!(a.state(), state::FATAL_ERROR);
}

#[test]
fn fast_producer_that_closes_cleanly_delivers_everything_first() {
    let (mut p, mut c, a) = fast_pair(4096);
    send(&mut p, b"last words", 3).unwrap();
    a.mark_disconnected();
    assert_eq!(recv(&mut c).unwrap().unwrap(), (b"last words".to_vec(), 3));
    assert!(matches!(recv(&mut c), Err(Error::PeerClosed)));
}

#[test]
fn fast_fuzz_entry_point_survives_edge_inputs() {
    fuzz_consumer_fast(&[]);
    fuzz_consumer_fast(&[0xFF; 16]);
    let mut v = vec![0u8; 8];
    v.extend([0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 64, 0, 0, 0]);
    v.extend([1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
    fuzz_consumer_fast(&v);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The fast mode against the same model: commits are published at flush, after 32
    /// commits, or when the ring is full.
    #[test]
    fn fast_ring_matches_a_model_queue(ops in prop::collection::vec(op(), 1..300), cap_log in 10u32..13) {
        let (mut p, mut c, _) = fast_pair(1 << cap_log);
        let mut published: VecDeque<(Vec<u8>, u32)> = VecDeque::new();
        let mut unpublished: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut seq: u32 = 0;
        for op in ops {
            match op {
                Op::Send { max, len, flush } => {
                    let len = len.min(max);
                    match p.acquire(max) {
                        Ok(r) => {
                            seq += 1;
                            let data: Vec<u8> = (0..len).map(|i| (seq as usize + i) as u8).collect();
                            p.payload_mut(&r)[..len].copy_from_slice(&data);
                            p.commit(r, len, seq, None).unwrap();
                            unpublished.push((data, seq));
                            if unpublished.len() == 32 || flush {
                                if flush { p.flush(); }
                                published.extend(unpublished.drain(..));
                            }
                        }
                        Err(Error::Full { .. }) => published.extend(unpublished.drain(..)),
                        Err(Error::MessageTooLarge { .. }) => {}
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Rollback { max } => {
                    match p.acquire(max) {
                        Ok(r) => p.payload_mut(&r).fill(0xEE),
                        Err(Error::Full { .. }) => published.extend(unpublished.drain(..)),
                        Err(_) => {}
                    }
                }
                Op::Recv => {
                    let got = recv(&mut c).unwrap();
                    prop_assert_eq!(got, published.pop_front());
                }
                Op::Drain { n } => {
                    let mut at = c.position();
                    let mut got = Vec::new();
                    while got.len() < n {
                        match c.peek(at).unwrap() {
                            Some(s) => { got.push((c.payload(&s).to_vec(), s.type_id)); at = s.end; }
                            None => break,
                        }
                    }
                    let want: Vec<_> = published.drain(..got.len().min(published.len())).collect();
                    prop_assert_eq!(&got, &want);
                    if !got.is_empty() { c.advance(at); }
                }
                Op::Flush => {
                    p.flush();
                    published.extend(unpublished.drain(..));
                }
            }
        }
        p.flush();
        published.extend(unpublished.drain(..));
        while let Some(m) = recv(&mut c).unwrap() {
            prop_assert_eq!(Some(m), published.pop_front());
        }
        prop_assert!(published.is_empty(), "lost {} messages", published.len());
    }

    #[test]
    fn fast_hostile_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 8..400)) {
        fuzz_consumer_fast(&data);
    }
}
