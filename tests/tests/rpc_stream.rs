//! Server-streaming calls over shared memory and TCP: 10,000 items in order,
//! cancellation midway (the server stops), an error mid-stream, unary calls interleaved
//! with a stream, a slow reader, and a client that disconnects mid-stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::{TcpClient, TcpServer, TcpServerOptions};
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

/// A caller of either transport, with its window.
trait Client: Caller {
    fn in_flight(&self) -> usize;
}

impl Client for RpcBus {
    fn in_flight(&self) -> usize {
        RpcBus::in_flight(self)
    }
}

impl Client for TcpClient {
    fn in_flight(&self) -> usize {
        TcpClient::in_flight(self)
    }
}

/// Runs `body` against a shared-memory server and against TCP servers (streams on their
/// own threads, and on a worker pool), each counting the items it sent in `sent`.
fn on_every_transport(name: &str, body: impl Fn(&dyn Fn() -> u64, &dyn ErasedClient)) {
    let sent = Arc::new(AtomicU64::new(0));
    let (stop, path, thread) = serve(name, sent.clone());
    let bus = RpcBus::connect(&path).unwrap();
    let s = sent.clone();
    body(&move || s.load(Ordering::SeqCst), &bus);
    drop(bus);
    stop.stop();
    thread.join().unwrap();
    for workers in [0, 2] {
        let sent = Arc::new(AtomicU64::new(0));
        let opts = TcpServerOptions::default().workers(workers).on_error(|_| {});
        let server = TcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
        let h = server.spawn(Arc::new(dispatcher(sent.clone()))).unwrap();
        let client = TcpClient::connect(&h.address()).unwrap();
        body(&move || sent.load(Ordering::SeqCst), &client);
        drop(client);
        h.shutdown().unwrap();
    }
}

/// What the shared bodies need of a client, without generics (a closure cannot be
/// generic over both transports).
trait ErasedClient {
    fn invoke(&self, msg_type: u16, payload: &[u8]) -> tachyon::Result<Vec<u8>>;
    fn open(&self, msg_type: u16, payload: &[u8])
        -> tachyon::Result<tachyon::rpc::ReplyStream<'_>>;
    fn in_flight(&self) -> usize;
}

impl<C: Client> ErasedClient for C {
    fn invoke(&self, msg_type: u16, payload: &[u8]) -> tachyon::Result<Vec<u8>> {
        Caller::invoke(self, payload, msg_type, T)
    }
    fn open(
        &self,
        msg_type: u16,
        payload: &[u8],
    ) -> tachyon::Result<tachyon::rpc::ReplyStream<'_>> {
        self.open_stream(payload, msg_type, T)
    }
    fn in_flight(&self) -> usize {
        Client::in_flight(self)
    }
}

fn count(c: &dyn ErasedClient, n: u64) -> TypedStream<'_, u64> {
    TypedStream::new(c.open(5, &codec::encode(&n).unwrap()).unwrap())
}

#[test]
fn ten_thousand_items_in_order_then_the_end() {
    on_every_transport("stream-order", |_, c| {
        let got: Vec<u64> = count(c, 10_000).collect::<tachyon::Result<_>>().unwrap();
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        assert_eq!(c.in_flight(), 0, "the end frees the call");
        // An empty stream ends at once.
        assert_eq!(count(c, 0).count(), 0);
    });
}

#[test]
fn cancelling_midway_stops_the_server_and_frees_the_window() {
    on_every_transport("stream-cancel", |sent, c| {
        let mut s = count(c, 1_000_000_000);
        for want in 0..5_000 {
            assert_eq!(s.next().unwrap().unwrap(), want);
        }
        drop(s); // cancels
                 // The client goes on: unary calls are answered, and the cancelled stream's late
                 // items are dropped on the way.
        for _ in 0..100 {
            assert_eq!(c.invoke(1, b"after").unwrap(), b"after");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.in_flight() != 0 {
            assert!(Instant::now() < deadline, "the cancelled stream never ended");
            let _ = c.invoke(1, b"drain").unwrap();
        }
        let at_end = sent();
        assert!(at_end < 1_000_000, "the server kept streaming: {at_end} items");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sent(), at_end, "the server stopped");
    });
}

#[test]
fn an_error_ends_the_stream_after_the_items_before_it() {
    on_every_transport("stream-error", |_, c| {
        let mut s: TypedStream<'_, u64> =
            TypedStream::new(c.open(6, &codec::encode(&5u64).unwrap()).unwrap());
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
        let mut bad = c.open(5, b"\xc1").unwrap();
        match bad.next_item() {
            Err(Error::Rpc(e)) => assert_eq!(e.code, code::BAD_REQUEST),
            other => panic!("expected BAD_REQUEST, got {other:?}"),
        }
        drop(bad);
        assert_eq!(c.in_flight(), 0);
    });
}

#[test]
fn unary_calls_interleave_with_a_stream() {
    on_every_transport("stream-mixed", |_, c| {
        let mut s = count(c, 2_000);
        let mut got = Vec::new();
        for i in 0..2_000u64 {
            if i % 100 == 0 {
                // Items that arrive meanwhile are kept for the stream, in order.
                assert_eq!(c.invoke(1, &i.to_le_bytes()).unwrap(), i.to_le_bytes());
            }
            got.push(s.next().unwrap().unwrap());
        }
        assert!(s.next().is_none());
        assert_eq!(got, (0..2_000).collect::<Vec<_>>());
    });
}

#[test]
fn tcp_streams_survive_a_slow_reader_and_end_with_the_connection() {
    // A reader slower than the handler: the handler waits for room (the window), and
    // nothing is lost.
    let sent = Arc::new(AtomicU64::new(0));
    let opts = TcpServerOptions::default().on_error(|_| {});
    let h = TcpServer::bind("tcp://127.0.0.1:0", opts)
        .unwrap()
        .spawn(Arc::new(dispatcher(sent.clone())))
        .unwrap();
    let client = TcpClient::connect(&h.address()).unwrap();
    let mut s = count(&client, 300);
    for want in 0..300 {
        if want < 5 {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(s.next().unwrap().unwrap(), want);
    }
    assert!(s.next().is_none());
    drop(s);
    // A client that stops reading stops the handler once the socket buffers and the
    // stream's window are full: the server's memory does not grow.
    let mut s = count(&client, 1_000_000_000);
    for want in 0..10 {
        assert_eq!(s.next().unwrap().unwrap(), want);
    }
    std::thread::sleep(Duration::from_millis(500));
    let blocked = sent.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sent.load(Ordering::SeqCst), blocked, "the handler ran on past the window");
    assert!(blocked < 2_000_000, "{blocked} items went out to a client that read 10");
    // A stream whose client disconnects (no cancel: the socket just closes) stops on
    // the server.
    std::mem::forget(s);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = sent.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the stream outlived its connection");
        last = now;
    }
    // Unary calls with the same dispatcher are still served inline.
    let client = TcpClient::connect(&h.address()).unwrap();
    assert_eq!(client.invoke(b"still fine", 1, T).unwrap(), b"still fine");
    drop(client);
    h.shutdown().unwrap();

    // A client that takes nothing for the stall timeout has its stream ended with
    // DEADLINE_EXCEEDED, after every item that went out before.
    let opts = TcpServerOptions::default().streams(1, Duration::from_millis(200)).on_error(|_| {});
    let h = TcpServer::bind("tcp://127.0.0.1:0", opts)
        .unwrap()
        .spawn(Arc::new(dispatcher(Arc::default())))
        .unwrap();
    let client = TcpClient::connect(&h.address()).unwrap();
    let mut s = count(&client, 1_000_000_000);
    std::thread::sleep(Duration::from_secs(1));
    let mut taken = 0u64;
    let failure = loop {
        match s.next() {
            Some(Ok(i)) => {
                assert_eq!(i, taken);
                taken += 1;
            }
            Some(Err(e)) => break e,
            None => panic!("the stream ended cleanly after {taken} items"),
        }
    };
    assert!(matches!(&failure, Error::Rpc(r) if r.code == code::DEADLINE_EXCEEDED), "{failure:?}");
    drop(s);
    assert_eq!(client.in_flight(), 0);
    drop(client);
    h.shutdown().unwrap();
}

use tachyon_tests::schema::{check_feed, feed_schema::feed, FeedClient, FeedServer};

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
    let stopped = check_feed(&client, 10_000, || bus.in_flight()).unwrap();
    assert!(stopped >= 5_000, "{stopped}");
    drop(bus);
    stop.stop();
    thread.join().unwrap();
    // The same generated client over TCP.
    let h = TcpServer::bind("tcp://127.0.0.1:0", TcpServerOptions::default())
        .unwrap()
        .spawn(Arc::new(feed::feed::dispatcher(FeedServer::default())))
        .unwrap();
    let tcp = TcpClient::connect(&h.address()).unwrap();
    let over_tcp = FeedClient::new(&tcp).with_timeout(Duration::from_secs(10));
    check_feed(&over_tcp, 10_000, || tcp.in_flight()).unwrap();
    // A request that does not decode ends the stream with BAD_REQUEST.
    let mut bad = tcp.open_stream(b"\xc1", feed::feed::TICKS, T).unwrap();
    assert!(matches!(bad.next_item(), Err(Error::Rpc(e)) if e.code == code::BAD_REQUEST));
    drop(bad);
    drop(tcp);
    h.shutdown().unwrap();
}
