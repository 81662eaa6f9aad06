use super::*;

fn limits() -> Limits {
    Limits {
        max_frame: 1 << 20,
        max_in_flight: 4,
        hello_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        high_water: 1 << 16,
        low_water: 1 << 12,
        handler_timeout: None,
    }
}

fn dispatcher() -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).unwrap();
    d
}

fn frames(bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let d = Decoder::new(1 << 20);
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(Step::Frame { header, payload, used }) = d.next(&bytes[at..]) {
        out.push((header, payload.to_vec()));
        at += used;
    }
    out
}

fn hello() -> Vec<u8> {
    Hello { version: 1, max_frame: 1 << 16, max_in_flight: 16 }.frame()
}

#[test]
fn hello_then_requests_split_anywhere_are_answered_in_order() {
    let d = dispatcher();
    let mut stream = hello();
    for cid in 1..=3u64 {
        frame::push_message(&mut stream, Kind::Request, 1, cid, 0, &cid.to_le_bytes());
    }
    for chunk in [1usize, 7, 24, 1000] {
        let mut c = Conn::new(limits(), Instant::now());
        for part in stream.chunks(chunk) {
            c.on_bytes(part, Instant::now(), &mut Inline(&d));
        }
        let out = frames(c.output());
        assert_eq!(out[0].0.kind, Kind::Hello);
        let h = Hello::decode(&out[0].1).unwrap();
        assert_eq!((h.max_frame, h.max_in_flight), (1 << 16, 4), "the smaller limits win");
        let replies: Vec<u64> = out[1..].iter().map(|(h, _)| h.correlation_id).collect();
        assert_eq!(replies, [1, 2, 3], "chunks of {chunk}");
        assert!(c.closing().is_none());
    }
}

#[test]
fn bad_input_closes_with_a_reason() {
    let d = dispatcher();
    let mut c = Conn::new(limits(), Instant::now());
    let mut req = Vec::new();
    frame::push_message(&mut req, Kind::Request, 1, 1, 0, b"x");
    c.on_bytes(&req, Instant::now(), &mut Inline(&d));
    assert_eq!(c.closing().unwrap().code, GoawayCode::Protocol, "a request before the hello");

    let mut c = Conn::new(limits(), Instant::now());
    let mut big = hello();
    big.extend_from_slice(
        &Header { len: 1 << 17, ..Header { correlation_id: 1, ..Header::new(Kind::Request) } }
            .encode(),
    );
    c.on_bytes(&big, Instant::now(), &mut Inline(&d));
    assert_eq!(c.closing().unwrap().code, GoawayCode::FrameTooLarge);
    let out = frames(c.output());
    assert_eq!(out.last().unwrap().0.kind, Kind::Goaway);

    let mut c = Conn::new(limits(), Instant::now());
    let mut junk = hello();
    junk.extend_from_slice(&[0xEE; 24]);
    c.on_bytes(&junk, Instant::now(), &mut Inline(&d));
    assert_eq!(c.closing().unwrap().code, GoawayCode::Protocol);
}

#[test]
fn a_missing_hello_and_a_stalled_frame_time_out() {
    let t0 = Instant::now();
    let mut c = Conn::new(limits(), t0);
    c.check_timeouts(t0 + Duration::from_millis(500));
    assert!(c.closing().is_none());
    c.check_timeouts(t0 + Duration::from_secs(2));
    assert_eq!(c.closing().unwrap().code, GoawayCode::HelloTimeout);

    let d = dispatcher();
    let mut c = Conn::new(limits(), t0);
    let mut bytes = hello();
    bytes.extend_from_slice(&[1, 0, 0]); // a header cut short
    c.on_bytes(&bytes, t0, &mut Inline(&d));
    c.check_timeouts(t0 + Duration::from_secs(2));
    assert_eq!(c.closing().unwrap().code, GoawayCode::ReadTimeout);
}

#[test]
fn replies_piling_up_pause_reading_until_they_drain() {
    let d = dispatcher();
    let mut c = Conn::new(Limits { high_water: 256, low_water: 64, ..limits() }, Instant::now());
    let mut bytes = hello();
    for cid in 1..=4 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, &[7; 100]);
    }
    c.on_bytes(&bytes, Instant::now(), &mut Inline(&d));
    assert!(!c.wants_read());
    let n = c.output().len() - 32;
    c.sent(n);
    assert!(c.wants_read());
    assert_eq!(c.counts.paused, 1);
}

const HEADER_LEN_FOR_TESTS: usize = frame::HEADER_LEN;

/// Hands every request off, keeping the controls (msg_type 5 streams).
struct Deferred(Vec<(u64, Arc<JobCtl>)>);

impl Handler for Deferred {
    fn request(&mut self, h: &Header, _: &[u8], _: &mut Vec<u8>) -> Answer {
        let ctl = Arc::new(JobCtl::new(h.msg_type() == 5));
        self.0.push((h.correlation_id, ctl.clone()));
        Answer::Later(ctl)
    }
}

#[test]
fn stream_items_flow_outside_the_window_and_a_cancel_still_ends_the_stream() {
    let mut w = Deferred(Vec::new());
    let mut c = Conn::new(limits(), Instant::now()); // max 4 in flight
    let mut bytes = hello();
    frame::push_message(&mut bytes, Kind::Request, 5, 1, 0, b"s");
    c.on_bytes(&bytes, Instant::now(), &mut w);
    for _ in 0..10 {
        c.finished(1, Some(5), b"item", false);
    }
    // Ten items queued: still room for three more calls.
    let mut bytes = Vec::new();
    for cid in 2..=4 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
    }
    c.on_bytes(&bytes, Instant::now(), &mut w);
    assert!(c.closing().is_none(), "{:?}", c.closing());
    // The client cancels: the stream's control says so, later items are dropped,
    // and its end still goes out.
    let mut bytes = Vec::new();
    frame::push_control(&mut bytes, Kind::Cancel, 1);
    c.on_bytes(&bytes, Instant::now(), &mut w);
    assert!(w.0[0].1.is_cancelled());
    c.finished(1, Some(5), b"late", false);
    c.finished(1, Some(0xFFFE), b"", true);
    let out = frames(c.output());
    let got: Vec<(u16, &[u8])> =
        out[1..].iter().map(|(h, p)| (h.msg_type(), p.as_slice())).collect();
    assert_eq!(got.len(), 11);
    assert!(got[..10].iter().all(|&(mt, p)| mt == 5 && p == b"item"));
    assert_eq!(got[10], (0xFFFE, &b""[..]));
    // A closed connection cancels what workers hold.
    let held = w.0[1].1.clone();
    drop(c);
    assert!(held.is_cancelled());
}

#[test]
fn a_call_its_handler_does_not_answer_in_time_gets_handler_error_and_its_late_answer_is_dropped() {
    let mut w = Deferred(Vec::new());
    let limits = Limits { handler_timeout: Some(Duration::from_millis(50)), ..limits() };
    let mut c = Conn::new(limits, Instant::now());
    let mut bytes = hello();
    for cid in 1..=3 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
    }
    let t0 = Instant::now();
    c.on_bytes(&bytes, t0, &mut w);
    c.sent(c.output().len()); // the hello
    c.finished(2, Some(1), b"on time", true);
    c.check_timeouts(t0); // nothing expired yet
    let out = frames(c.output());
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0.correlation_id, out[0].1.as_slice()), (2, &b"on time"[..]));
    c.sent(c.output().len());
    c.check_timeouts(t0 + Duration::from_millis(200));
    let out = frames(c.output());
    let got: Vec<_> = out.iter().map(|(h, _)| (h.correlation_id, h.msg_type())).collect();
    assert_eq!(got, [(1, MSG_TYPE_ERROR), (3, MSG_TYPE_ERROR)]);
    let e = crate::rpc::RpcError::decode(&out[0].1);
    assert_eq!(e.code, crate::rpc::code::HANDLER_ERROR);
    assert!(e.message.contains("did not answer"), "{}", e.message);
    assert!(w.0[0].1.is_cancelled() && w.0[2].1.is_cancelled());
    // The late answers go nowhere, and the window is free again.
    c.sent(c.output().len());
    c.finished(1, None, b"late", true);
    c.finished(3, Some(1), b"late", true);
    assert!(c.output().is_empty());
    let mut more = Vec::new();
    for cid in 4..=7 {
        frame::push_message(&mut more, Kind::Request, 1, cid, 0, b"x");
    }
    c.on_bytes(&more, Instant::now(), &mut w);
    assert!(c.closing().is_none(), "four calls fit the window again");
}

#[test]
fn calls_on_workers_count_in_flight_take_cancels_and_hold_the_goaway() {
    let mut w = Deferred(Vec::new());
    let mut c = Conn::new(limits(), Instant::now());
    let mut bytes = hello();
    for cid in 1..=3 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
    }
    frame::push_control(&mut bytes, Kind::Cancel, 2);
    frame::push_control(&mut bytes, Kind::Ping, 9);
    c.on_bytes(&bytes, Instant::now(), &mut w);
    assert!(w.0[1].1.is_cancelled(), "the cancel reached call 2's flag");
    assert!(!w.0[0].1.is_cancelled());
    let out = frames(c.output());
    assert_eq!(out.len(), 2, "a hello and a pong, no replies yet");
    assert_eq!(out[1].0.kind, Kind::Pong);

    // A graceful shutdown waits for the three calls.
    c.shutdown();
    assert!(c.closing().is_none() && !c.wants_read());
    c.finished(3, Some(1), b"three", true);
    c.finished(2, None, b"", true); // cancelled: no reply
    c.finished(7, Some(1), b"never asked", true); // unknown: ignored
    assert!(c.closing().is_none());
    c.finished(1, Some(1), b"one", true);
    assert_eq!(c.closing().unwrap().code, GoawayCode::Shutdown);
    let out = frames(c.output());
    let got: Vec<(Kind, u64)> = out[2..].iter().map(|(h, _)| (h.kind, h.correlation_id)).collect();
    assert_eq!(got, [(Kind::Reply, 3), (Kind::Reply, 1), (Kind::Goaway, 0)]);

    // Calls on workers count against the in-flight window.
    let mut c = Conn::new(limits(), Instant::now());
    let mut bytes = hello();
    for cid in 1..=5 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
    }
    c.on_bytes(&bytes, Instant::now(), &mut Deferred(Vec::new()));
    assert_eq!(c.closing().unwrap().code, GoawayCode::TooManyInFlight);

    // A cancel frees its place in the window, whether the call waits for a worker
    // or its reply waits for the socket.
    let mut c = Conn::new(limits(), Instant::now());
    let mut bytes = hello();
    for cid in 1..=4 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
    }
    frame::push_control(&mut bytes, Kind::Cancel, 1);
    frame::push_message(&mut bytes, Kind::Request, 1, 5, 0, b"x");
    c.on_bytes(&bytes, Instant::now(), &mut Deferred(Vec::new()));
    assert!(c.closing().is_none());
    let d = dispatcher();
    let mut c = Conn::new(limits(), Instant::now());
    let mut bytes = hello();
    for cid in 1..=4 {
        frame::push_message(&mut bytes, Kind::Request, 1, cid, 0, b"x");
    }
    c.on_bytes(&bytes, Instant::now(), &mut Inline(&d));
    let mut more = Vec::new();
    frame::push_control(&mut more, Kind::Cancel, 2);
    frame::push_message(&mut more, Kind::Request, 1, 5, 0, b"x");
    c.on_bytes(&more, Instant::now(), &mut Inline(&d));
    assert!(c.closing().is_none(), "the cancelled reply left the window");
    // Replies handed to the socket leave it too, even when a send is partial.
    let hello_len = HEADER_LEN_FOR_TESTS + frame::HELLO_LEN;
    let reply_len = HEADER_LEN_FOR_TESTS + 1;
    c.sent(hello_len + 3 * reply_len + 3); // the hello, replies 1 to 3, part of 4
    let mut more = Vec::new();
    frame::push_message(&mut more, Kind::Request, 1, 6, 0, b"x");
    frame::push_message(&mut more, Kind::Request, 1, 7, 0, b"x");
    c.on_bytes(&more, Instant::now(), &mut Inline(&d));
    assert!(c.closing().is_none(), "two replies went out, two calls came in");
    let mut over = Vec::new();
    frame::push_message(&mut over, Kind::Request, 1, 8, 0, b"x");
    c.on_bytes(&over, Instant::now(), &mut Inline(&d));
    assert_eq!(c.closing().unwrap().code, GoawayCode::TooManyInFlight);

    // A correlation id reused while its call is still on a worker.
    let mut c = Conn::new(limits(), Instant::now());
    let mut bytes = hello();
    frame::push_message(&mut bytes, Kind::Request, 1, 5, 0, b"x");
    frame::push_message(&mut bytes, Kind::Request, 1, 5, 0, b"x");
    c.on_bytes(&bytes, Instant::now(), &mut Deferred(Vec::new()));
    assert_eq!(c.closing().unwrap().code, GoawayCode::Protocol);
}
