//! Schema-generated Rust code over real shared memory: the typed client against the
//! generated dispatcher, `describe`/`verify`, application error codes, evolution
//! between two released versions (both directions), and the lock check.

use std::sync::Arc;
use std::time::Duration;

use tachyon::rpc::{code, RpcBus, RpcServer, ServerOptions, StopHandle};
use tachyon::Error;
use tachyon_tests::schema::{conformance, ConformanceClient, Mirror, Rng};
use tachyon_tests::socket_path;

mod v1 {
    tachyon::include_schema!("schemas/evolution/v1/evo.tachyon");
}
mod v2 {
    use tachyon::rpc::ServerError;
    tachyon::include_schema!("schemas/evolution/v2/evo.tachyon");

    /// Version 2's server: counts the items put.
    #[derive(Default)]
    pub struct Shop(pub std::sync::atomic::AtomicU64);

    impl evo::Shop for Shop {
        fn put(&self, req: evo::Item) -> Result<u64, ServerError> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok(if req.note.is_some() { n + 1000 } else { n })
        }
        fn count(&self, _req: &[u8]) -> Result<u64, ServerError> {
            Ok(self.0.load(std::sync::atomic::Ordering::SeqCst))
        }
    }
}

struct V1Shop;
impl v1::evo::Shop for V1Shop {
    fn put(&self, req: v1::evo::Item) -> Result<u64, tachyon::rpc::ServerError> {
        Ok(u64::from(req.price))
    }
}

const T: Option<Duration> = Some(Duration::from_secs(5));

fn serve(
    name: &str,
    d: tachyon::rpc::Dispatcher,
) -> (StopHandle, String, std::thread::JoinHandle<()>) {
    let path = socket_path(name);
    let server = RpcServer::bind(&path, ServerOptions::default()).expect("bind");
    let stop = server.stop_handle();
    let t = std::thread::spawn(move || {
        let _ = server.serve(Arc::new(d));
    });
    (stop, path, t)
}

#[test]
fn generated_client_calls_generated_server() {
    let (server, path, thread) =
        serve("schema-live", conformance::conformance::dispatcher(Mirror::default()));
    let bus = RpcBus::connect(&path).expect("connect");
    let client = ConformanceClient::new(&bus).with_timeout(Duration::from_secs(5));
    client.verify().expect("same schema");
    let d = client.describe().expect("describe");
    assert_eq!((d.package.as_str(), d.service.as_str()), ("conformance", "Conformance"));
    assert_eq!(d.fingerprint, conformance::FINGERPRINT);
    let mut rng = Rng(7);
    for _ in 0..300 {
        let v = rng.everything(2);
        assert_eq!(client.mirror(&v).expect("mirror"), v);
    }
    let mut v = rng.everything(0);
    v.text = "reject".into();
    match client.check(&v) {
        Err(Error::Rpc(e)) => {
            assert_eq!(e.code, conformance::conformance::errors::REJECTED);
            assert_eq!(e.message, "rejected as asked");
        }
        other => panic!("expected the rejected error, got {other:?}"),
    }
    // Oneway: no reply, nothing left in flight, and the server saw each one in order.
    let leaf = conformance::Leaf { name: "n".into(), tags: vec![] };
    for _ in 0..1000 {
        client.record(&leaf).expect("record");
    }
    assert_eq!(bus.in_flight(), 0);
    assert_eq!(client.recorded(b"").expect("recorded"), 1000);
    // Called with a correlation id, a oneway method answers (empty), so nobody hangs.
    let r = tachyon::rpc::Caller::invoke(
        &bus,
        &tachyon::rpc::codec::encode(&leaf).unwrap(),
        conformance::conformance::RECORD,
        T,
    );
    assert_eq!(r.expect("a oneway method called normally"), Vec::<u8>::new());
    assert_eq!(client.recorded(b"").expect("recorded"), 1001);
    // A request that is not an `Everything` gets BAD_REQUEST.
    match tachyon::rpc::Caller::invoke(&bus, b"\x01", conformance::conformance::MIRROR, T) {
        Err(Error::Rpc(e)) => assert_eq!(e.code, code::BAD_REQUEST),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    drop(bus);
    server.stop();
    thread.join().unwrap();
}

#[test]
fn evolution_old_client_new_server_and_back() {
    // A v2 server, a v1 client: the old method works, verify names the difference.
    let (server, path, thread) =
        serve("schema-evo2", v2::evo::shop::dispatcher(v2::Shop::default()));
    let bus = RpcBus::connect(&path).expect("connect");
    let old = v1::evo::ShopClient::new(&bus).with_timeout(Duration::from_secs(5));
    assert_eq!(old.put(&v1::evo::Item { name: "a".into(), price: 3 }).unwrap(), 1);
    let e = old.verify().unwrap_err().to_string();
    assert!(
        e.contains("server only: struct Item { name: string; price: u32; note?: string; }"),
        "{e}"
    );
    assert!(e.contains("client only: struct Item { name: string; price: u32; }"), "{e}");
    let new = v2::evo::ShopClient::new(&bus);
    assert_eq!(new.count(b"").unwrap(), 1);
    drop(bus);
    server.stop();
    thread.join().unwrap();

    // A v1 server, a v2 client: the added optional field is ignored, the new method is
    // an UNKNOWN_MSG_TYPE error reply, not a hang or a crash.
    let (server, path, thread) = serve("schema-evo1", v1::evo::shop::dispatcher(V1Shop));
    let bus = RpcBus::connect(&path).expect("connect");
    let new = v2::evo::ShopClient::new(&bus).with_timeout(Duration::from_secs(5));
    let item = v2::evo::Item { name: "b".into(), price: 9, note: Some("gift".into()) };
    assert_eq!(new.put(&item).unwrap(), 9);
    match new.count(b"") {
        Err(Error::Rpc(e)) => assert_eq!(e.code, code::UNKNOWN_MSG_TYPE),
        other => panic!("expected UNKNOWN_MSG_TYPE, got {other:?}"),
    }
    drop(bus);
    server.stop();
    thread.join().unwrap();
}

#[test]
fn lock_accepts_v2_and_names_each_breaking_rule() {
    use tachyon_schema::lock::{check, Lock};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/evolution");
    let v1 = Lock::of(&tachyon_schema::load_dir(&dir.join("v1")).unwrap());
    let v2 = Lock::of(&tachyon_schema::load_dir(&dir.join("v2")).unwrap());
    assert_eq!(check(&v1, &v2), vec![]);
    let broken = |src: &str| {
        let now = Lock::of(&tachyon_schema::load_str("evo.tachyon", src).unwrap());
        check(&v2, &now).into_iter().map(|v| v.rule).collect::<Vec<_>>()
    };
    let svc = "service Shop { rpc put(Item) -> u64 = 300; rpc count(bytes) -> u64 = 301; }";
    assert_eq!(broken(&format!("package evo; struct Item {{ name: string; price: u32; note?: string; qty: u32; }} {svc}")), ["required-field-added"]);
    assert_eq!(
        broken(&format!(
            "package evo; struct Item {{ name: string; price: u64; note?: string; }} {svc}"
        )),
        ["field-type-changed"]
    );
    assert_eq!(
        broken("package evo; struct Item { name: string; price: u32; note?: string; } service Shop { rpc put(Item) -> u64 = 300; rpc tally(bytes) -> u64 = 301; }"),
        ["method-removed", "msg-type-reused"]
    );
}

#[test]
fn the_repository_lock_matches_its_schemas() {
    use tachyon_schema::lock::{check, Lock};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let now = Lock::of(&tachyon_schema::load_dir(&dir).expect("schemas/ is valid"));
    let text = std::fs::read_to_string(dir.join("tachyon.lock")).expect("schemas/tachyon.lock");
    let released = Lock::parse(&text).unwrap();
    assert_eq!(check(&released, &now), vec![], "schemas/ breaks schemas/tachyon.lock");
    assert_eq!(released, now, "schemas/tachyon.lock is out of date: run `make schema-lock`");
}

#[test]
fn generated_client_over_tcp_both_backends_with_oneway() {
    use tachyon::net::{Backend, TcpClient, TcpServer, TcpServerOptions};
    for backend in [Backend::IoUring, Backend::Epoll] {
        for workers in [0, 2] {
            let opts =
                TcpServerOptions::default().backend(backend).workers(workers).on_error(|_| {});
            let server = TcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
            let h = server
                .spawn(Arc::new(conformance::conformance::dispatcher(Mirror::default())))
                .unwrap();
            let tcp = TcpClient::connect(&h.address()).unwrap();
            let client = ConformanceClient::new(&tcp).with_timeout(Duration::from_secs(10));
            client.verify().unwrap();
            let mut rng = Rng(backend as u64 + workers as u64);
            for _ in 0..100 {
                let v = rng.everything(2);
                assert_eq!(client.mirror(&v).unwrap(), v);
            }
            // 2,000 oneway sends, far more than the in-flight window: none is answered,
            // none is lost (workers run them untracked, so wait for the count to settle).
            let leaf = conformance::Leaf { name: "n".into(), tags: vec![] };
            for _ in 0..2000 {
                client.record(&leaf).unwrap();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while client.recorded(b"").unwrap() != 2000 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{backend:?}/{workers}: oneway sends lost"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(tcp);
            h.shutdown().unwrap();
        }
    }
}

#[test]
fn topics_travel_typed_over_a_bus() {
    use conformance::topics::{self, Message};
    let path = socket_path("schema-topics");
    let listener = {
        let path = path.clone();
        std::thread::spawn(move || tachyon::Bus::listen(&path, 1 << 16).expect("listen"))
    };
    let producer = loop {
        match tachyon::Bus::connect(&path) {
            Ok(b) => break b,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let consumer = listener.join().unwrap();
    let mut rng = Rng(3);
    let mut sent = Vec::new();
    for i in 0..200 {
        if i % 3 == 0 {
            let blob = vec![i as u8; i % 17];
            topics::send_blobs(&producer, &blob, T).unwrap();
            sent.push(Message::Blobs(blob));
        } else {
            let leaf = rng.everything(0).leaf;
            topics::send_leaves(&producer, &leaf, T).unwrap();
            sent.push(Message::Leaves(leaf));
        }
    }
    producer.send(b"not a topic", 77).unwrap();
    for want in sent {
        let m = consumer.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(topics::decode(m.type_id(), m.data()).unwrap(), Some(want));
    }
    let other = consumer.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(topics::decode(other.type_id(), other.data()).unwrap(), None);
    // A message that does not fit its topic's type is a codec error, not a panic.
    drop(other);
    producer.send(b"\xc1", u32::from(topics::LEAVES)).unwrap();
    let bad = consumer.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(topics::decode(bad.type_id(), bad.data()), Err(tachyon::Error::Codec(_))));
}
