//! Server-streaming calls over shared memory: 10,000 items in order, cancellation
//! midway (the server stops), an error mid-stream, unary calls interleaved with a
//! stream, and a clear error on a transport without streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::rpc::{
    code, codec, Caller, Dispatcher, RpcBus, RpcServer, ServerError, ServerOptions, TypedStream,
};
use tachyon::Error;
use tachyon_tests::socket_path;

const T: Option<Duration> = Some(Duration::from_secs(10));

fn dispatcher(sent: Arc<AtomicU64>) -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).unwrap();
    d.register_stream_typed(5, "count", move |n: u64, sink| {
        for i in 0..n {
            sink.send(&i)?;
            sent.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    })
    .unwrap();
    d.register_stream_typed(6, "fail_at", |n: u64, sink| {
        for i in 0..n {
            sink.send(&i)?;
        }
        Err(ServerError::new(123, format!("gave up after {n}")))
    })
    .unwrap();
    d
}

fn serve(
    name: &str,
    sent: Arc<AtomicU64>,
) -> (tachyon::rpc::StopHandle, String, std::thread::JoinHandle<()>) {
    let path = socket_path(name);
    let server = RpcServer::bind(&path, ServerOptions::default()).unwrap();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || {
        let _ = server.serve(Arc::new(dispatcher(sent)));
    });
    (stop, path, thread)
}

fn count(bus: &RpcBus, n: u64) -> TypedStream<'_, u64> {
    TypedStream::new(bus.open_stream(5, &codec::encode(&n).unwrap(), T).unwrap())
}

#[test]
fn ten_thousand_items_in_order_then_the_end() {
    let (stop, path, thread) = serve("stream-order", Arc::default());
    let bus = RpcBus::connect(&path).unwrap();
    let got: Vec<u64> = count(&bus, 10_000).collect::<tachyon::Result<_>>().unwrap();
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    assert_eq!(bus.in_flight(), 0, "the end frees the call");
    // An empty stream ends at once.
    assert_eq!(count(&bus, 0).count(), 0);
    drop(bus);
    stop.stop();
    thread.join().unwrap();
}

#[test]
fn cancelling_midway_stops_the_server_and_frees_the_window() {
    let sent = Arc::new(AtomicU64::new(0));
    let (stop, path, thread) = serve("stream-cancel", sent.clone());
    let bus = RpcBus::connect(&path).unwrap();
    let mut s = count(&bus, 1_000_000_000);
    for want in 0..5_000 {
        assert_eq!(s.next().unwrap().unwrap(), want);
    }
    drop(s); // cancels
             // The bus goes on: unary calls are answered, and the cancelled stream's late items
             // are dropped on the way.
    for _ in 0..100 {
        assert_eq!(bus.invoke(1, b"after", T).unwrap(), b"after");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.in_flight() != 0 {
        assert!(Instant::now() < deadline, "the cancelled stream never ended");
        let _ = bus.invoke(1, b"drain", T).unwrap();
    }
    let at_end = sent.load(Ordering::SeqCst);
    assert!(at_end < 1_000_000, "the server kept streaming: {at_end} items");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(sent.load(Ordering::SeqCst), at_end, "the server stopped");
    drop(bus);
    stop.stop();
    thread.join().unwrap();
}

#[test]
fn an_error_ends_the_stream_after_the_items_before_it() {
    let (stop, path, thread) = serve("stream-error", Arc::default());
    let bus = RpcBus::connect(&path).unwrap();
    let mut s: TypedStream<'_, u64> =
        TypedStream::new(bus.open_stream(6, &codec::encode(&5u64).unwrap(), T).unwrap());
    for want in 0..5 {
        assert_eq!(s.next().unwrap().unwrap(), want);
    }
    match s.next() {
        Some(Err(Error::Rpc(e))) => {
            assert_eq!((e.code, e.message.as_str()), (123, "gave up after 5"));
        }
        other => panic!("expected the error reply, got {other:?}"),
    }
    assert!(s.next().is_none(), "nothing after the error");
    drop(s);
    // A request that does not decode is a BAD_REQUEST error, as for unary calls.
    let mut bad = bus.open_stream(5, b"\xc1", T).unwrap();
    match bad.next_item() {
        Err(Error::Rpc(e)) => assert_eq!(e.code, code::BAD_REQUEST),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    drop(bad);
    assert_eq!(bus.in_flight(), 0);
    drop(bus);
    stop.stop();
    thread.join().unwrap();
}

#[test]
fn unary_calls_interleave_with_a_stream() {
    let (stop, path, thread) = serve("stream-mixed", Arc::default());
    let bus = RpcBus::connect(&path).unwrap();
    let mut s = count(&bus, 2_000);
    let mut got = Vec::new();
    for i in 0..2_000u64 {
        if i % 100 == 0 {
            // Items that arrive meanwhile are kept for the stream, in order.
            assert_eq!(bus.invoke(1, &i.to_le_bytes(), T).unwrap(), i.to_le_bytes());
        }
        got.push(s.next().unwrap().unwrap());
    }
    assert!(s.next().is_none());
    assert_eq!(got, (0..2_000).collect::<Vec<_>>());
    drop(s);
    drop(bus);
    stop.stop();
    thread.join().unwrap();
}

#[test]
fn tcp_says_it_does_not_carry_streams() {
    use tachyon::net::{TcpClient, TcpServer, TcpServerOptions};
    let server =
        TcpServer::bind("tcp://127.0.0.1:0", TcpServerOptions::default().on_error(|_| {})).unwrap();
    let h = server.spawn(Arc::new(dispatcher(Arc::default()))).unwrap();
    let client = TcpClient::connect(&h.address()).unwrap();
    assert!(matches!(
        client.open_stream(5, &codec::encode(&3u64).unwrap(), T),
        Err(Error::InvalidArgument(_))
    ));
    match client.invoke(5, &codec::encode(&3u64).unwrap(), T) {
        Err(Error::Rpc(e)) => assert_eq!(e.code, code::UNSUPPORTED),
        other => panic!("expected UNSUPPORTED, got {other:?}"),
    }
    assert_eq!(client.invoke(1, b"still fine", T).unwrap(), b"still fine");
    drop(client);
    h.shutdown().unwrap();
}

mod feed_schema {
    tachyon::include_schema!("schemas/streaming/feed.tachyon");
}
use feed_schema::feed::{self, Feed, FeedClient, Sub, Tick};

/// The generated `Feed` server: counts what it sent.
#[derive(Default)]
struct FeedServer(AtomicU64);

impl Feed for FeedServer {
    fn ticks(
        &self,
        req: Sub,
        sink: &mut tachyon::rpc::TypedSink<'_, '_, Tick>,
    ) -> Result<(), ServerError> {
        for seq in 0..req.count {
            sink.send(&Tick { symbol: req.symbol.clone(), seq, price: f64::from(seq) / 4.0 })?;
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
    fn bytes_of(
        &self,
        req: &[u8],
        sink: &mut tachyon::rpc::StreamSink<'_>,
    ) -> Result<(), ServerError> {
        for b in req {
            sink.send(&[*b])?;
        }
        Ok(())
    }
    fn sent(&self, _req: &[u8]) -> Result<u64, ServerError> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

#[test]
fn generated_streaming_client_and_server() {
    let path = socket_path("stream-schema");
    let server = RpcServer::bind(&path, ServerOptions::default()).unwrap();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || {
        let _ = server.serve(Arc::new(feed::feed::dispatcher(FeedServer::default())));
    });
    let bus = RpcBus::connect(&path).unwrap();
    let client = FeedClient::new(&bus).with_timeout(Duration::from_secs(10));
    client.verify().unwrap();
    let ticks: Vec<Tick> = client
        .ticks(&Sub { symbol: "TCHY".into(), count: 10_000 })
        .unwrap()
        .collect::<tachyon::Result<_>>()
        .unwrap();
    assert_eq!(ticks.len(), 10_000);
    assert!(ticks.iter().enumerate().all(|(i, t)| t.seq as usize == i && t.symbol == "TCHY"));
    let raw: Vec<Vec<u8>> =
        client.bytes_of(b"abc").unwrap().collect::<tachyon::Result<_>>().unwrap();
    assert_eq!(raw, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // Cancel midway: read 1,000 of a billion, drop the stream.
    let before = client.sent(b"").unwrap();
    let mut s = client.ticks(&Sub { symbol: "X".into(), count: 1_000_000_000 }).unwrap();
    for want in 0..1_000 {
        assert_eq!(s.next().unwrap().unwrap().seq, want);
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = client.sent(b"").unwrap();
    while bus.in_flight() != 0 {
        assert!(Instant::now() < deadline, "the cancelled stream never ended");
        sent = client.sent(b"").unwrap();
    }
    assert!(
        sent - before < 1_000_000,
        "the server kept streaming after the cancel: {}",
        sent - before
    );
    // Python and TypeScript do not generate streams yet: a clear, located error.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/streaming");
    let pkgs = tachyon_schema::load_dir(&dir).unwrap();
    let e = tachyon_schema::gen::files(tachyon_schema::gen::Lang::Python, &pkgs).unwrap_err();
    assert!(
        e.contains("feed.tachyon:9:9") && e.contains("`Feed.ticks` streams its replies"),
        "{e}"
    );
    drop(bus);
    stop.stop();
    thread.join().unwrap();
}
