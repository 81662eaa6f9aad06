use super::{frame, Conn, Decoder, Dispatcher, Duration, Inline, Instant, Limits, Step};

/// Fuzzes a server connection: the first bytes pick the limits and how the stream is cut
/// into reads; the rest is what a hostile client sends. The connection must answer or
/// close with a goaway, never panic, and everything it sends must be well-formed frames.
pub(crate) fn fuzz_conn(data: &[u8]) {
    let [frame_byte, window_byte, cut_byte, rest @ ..] = data else { return };
    let limits = Limits {
        max_frame: 1 + (u32::from(*frame_byte) << 6),
        max_in_flight: 1 + u32::from(*window_byte & 0x0F),
        hello_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        high_water: 256 << (*window_byte >> 4),
        low_water: 64,
        handler_timeout: None,
    };
    let cut = 1 + usize::from(*cut_byte);
    let mut dispatcher = Dispatcher::new();
    dispatcher.register_raw(1, "echo", <[u8]>::to_vec).expect("one handler");
    let t0 = Instant::now();
    let mut conn = Conn::new(limits, t0);
    let mut sent = Vec::new();
    for (i, part) in rest.chunks(cut).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 300);
        conn.on_bytes(part, now, &mut Inline(&dispatcher));
        conn.check_timeouts(now);
        let _ = conn.wants_read();
        // Half of what is queued goes out each turn.
        let half = conn.output().len().div_ceil(2);
        sent.extend_from_slice(&conn.output()[..half]);
        conn.sent(half);
    }
    conn.shutdown();
    sent.extend_from_slice(&conn.take_output());
    let dec = Decoder::new(frame::MAX_FRAME_LIMIT);
    let mut at = 0;
    while at < sent.len() {
        match dec.next(&sent[at..]) {
            Ok(Step::Frame { used, .. }) => at += used,
            other => panic!("the server sent a bad frame: {other:?}"),
        }
    }
}
