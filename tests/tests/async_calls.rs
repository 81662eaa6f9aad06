//! Awaitable calls over TCP (`TcpClient::call_async`): many tasks share one client, replies
//! complete their futures in any order, a dropped future cancels its call and frees its
//! slot, deadlines and a dead server surface as they do for blocking calls; under tokio
//! and under `futures`' executor alike (the futures need no runtime).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::{TcpClient, TcpClientOptions, TcpServer, TcpServerHandle, TcpServerOptions};
use tachyon::Error;
use tachyon_tests::KillOnDrop;

const T: Duration = Duration::from_secs(30);

fn serve(workers: usize) -> TcpServerHandle {
    let opts = TcpServerOptions::default().workers(workers).on_error(|_| {});
    let server = TcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
    server.spawn(Arc::new(tachyon_tests::service::dispatcher())).unwrap()
}

fn encode(ms: u64) -> Vec<u8> {
    tachyon::rpc::codec::encode(&ms).unwrap()
}

fn decode(b: &[u8]) -> u64 {
    tachyon::rpc::codec::decode(b).unwrap()
}

#[test]
fn ten_thousand_calls_from_a_hundred_tokio_tasks_complete_out_of_order() {
    let h = serve(8);
    let client = Arc::new(
        TcpClient::connect_with(&h.address(), &TcpClientOptions::default().connections(2)).unwrap(),
    );
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let start = Instant::now();
    let sums = rt.block_on(async {
        let tasks: Vec<_> = (0..100u64)
            .map(|task| {
                let c = client.clone();
                tokio::spawn(async move {
                    // 100 calls in flight per task at once: replies come back in any order
                    // (the workers sleep 0 to 2 ms per call).
                    let payloads: Vec<Vec<u8>> =
                        (0..100u64).map(|i| encode((task + i) % 3)).collect();
                    let calls = payloads.iter().map(|p| c.call_async(p, 5, Some(T)));
                    let replies = futures::future::join_all(calls).await;
                    let mut sum = 0;
                    for (i, r) in replies.into_iter().enumerate() {
                        let got = decode(&r.expect("a reply"));
                        assert_eq!(got, (task + i as u64) % 3);
                        sum += got;
                    }
                    sum
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let want: u64 = (0..100u64).flat_map(|t| (0..100u64).map(move |i| (t + i) % 3)).sum();
    assert_eq!(sums, want);
    assert_eq!(client.in_flight(), 0);
    assert_eq!(h.stats().requests, 10_000);
    eprintln!("10,000 async calls in {:?}", start.elapsed());
}

#[test]
fn a_dropped_future_cancels_its_call_and_frees_its_slot() {
    // Eight workers: the four abandoned calls keep sleeping on four of them (a started
    // handler runs to its end), the others serve the new calls.
    let h = serve(8);
    let opts = TcpClientOptions::default().max_in_flight(4);
    let client = TcpClient::connect_with(&h.address(), &opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let slow = encode(2_002);
        // Fill the window with slow calls, and give up on them after 50 ms.
        let calls: Vec<_> = (0..4).map(|_| client.call_async(&slow, 5, Some(T))).collect();
        let r =
            tokio::time::timeout(Duration::from_millis(50), futures::future::join_all(calls)).await;
        assert!(r.is_err(), "the slow calls cannot finish in 50 ms");
        assert_eq!(client.in_flight(), 0, "dropping the futures freed the window");
        // The freed slots serve new calls at once.
        let fast = encode(0);
        let replies =
            futures::future::join_all((0..4).map(|_| client.call_async(&fast, 5, Some(T)))).await;
        assert!(replies.iter().all(|r| r.as_ref().map(|b| decode(b)).ok() == Some(0)));
        // They were answered while the abandoned slow calls still slept on the server.
        assert_eq!(tachyon_tests::service::sleeps(2_002).1, 0, "the fast calls waited");
    });
}

#[test]
fn futures_waiting_for_room_in_the_window_each_time_out_at_their_own_deadline() {
    let h = serve(4);
    let opts = TcpClientOptions::default().max_in_flight(2);
    let client = TcpClient::connect_with(&h.address(), &opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let slow = encode(1_500);
        // Two slow calls fill the window; three more wait for room, each with its own
        // deadline, and each must give up at that deadline, not when a slot frees.
        let t = Instant::now();
        let fill: Vec<_> = (0..2)
            .map(|_| {
                let f = client.call_async(&slow, 5, Some(T));
                async move { (f.await, t.elapsed()) }
            })
            .collect();
        let waiting = [100u64, 250, 400].map(|ms| {
            let f = client.call_async(&slow, 5, Some(Duration::from_millis(ms)));
            async move {
                let r = f.await;
                (ms, r, t.elapsed())
            }
        });
        // Polled in order: the slow calls take the window first.
        let (filled, done) = futures::future::join(
            futures::future::join_all(fill),
            futures::future::join_all(waiting),
        )
        .await;
        let room_at = filled.iter().map(|(_, at)| *at).min().unwrap();
        for (ms, r, at) in done {
            assert!(matches!(r, Err(Error::Timeout(_))), "{ms} ms: {r:?}");
            assert!(at >= Duration::from_millis(ms), "{ms} ms ended early: {at:?}");
            assert!(at < room_at, "{ms} ms ended when a slot freed ({at:?}), not at its deadline");
        }
        assert!(filled.iter().all(|(r, _)| r.as_ref().map(|b| decode(b)).ok() == Some(1_500)));
    });
}

#[test]
fn deadlines_error_replies_and_a_dead_server_surface_through_futures() {
    let h = serve(2);
    let client = TcpClient::connect(&h.address()).unwrap();
    futures::executor::block_on(async {
        let t = Instant::now();
        let e = client.call_async(&encode(3_000), 5, Some(Duration::from_millis(150))).await;
        assert!(matches!(e, Err(Error::Timeout(_))), "{e:?}");
        assert!(t.elapsed() >= Duration::from_millis(150), "{:?}", t.elapsed());
        match client.call_async(b"", 999, Some(T)).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, tachyon::rpc::code::UNKNOWN_MSG_TYPE),
            other => panic!("{other:?}"),
        }
        // Many at once under futures' executor too.
        let payloads: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let replies =
            futures::future::join_all(payloads.iter().map(|p| client.call_async(p, 1, Some(T))))
                .await;
        for (p, r) in payloads.iter().zip(replies) {
            assert_eq!(&r.unwrap(), p);
        }
    });

    // A server process killed while a future waits: PeerDead at once.
    let (mut srv, addr, _) =
        tachyon_tests::tcp_peer(&["--addr", "tcp://127.0.0.1:0", "--workers", "2"], None);
    let client = TcpClient::connect(&addr).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        srv.0.kill().unwrap();
        srv
    });
    // PeerDead: neither the 10 s reply nor the 30 s Timeout.
    let e = futures::executor::block_on(client.call_async(&encode(10_000), 5, Some(T)));
    assert!(matches!(e, Err(Error::PeerDead(_))), "{e:?}");
    drop(killer.join().unwrap());
}

// ---- shared memory: AsyncRpcBus ------------------------------------------------------

use tachyon::rpc::{AsyncCaller, AsyncRpcBus, RpcBus, RpcServer, ServerOptions};
use tachyon_tests::socket_path;

fn shm_server(name: &str) -> (tachyon::rpc::ServerHandle, String) {
    let path = socket_path(name);
    let server = RpcServer::bind(&path, ServerOptions::default()).unwrap();
    (server.spawn(Arc::new(tachyon_tests::service::dispatcher())), path)
}

#[test]
fn shared_memory_ten_thousand_calls_from_a_hundred_tokio_tasks() {
    let (_server, path) = shm_server("async-many");
    let bus = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let start = Instant::now();
    let total = rt.block_on(async {
        let tasks: Vec<_> = (0..100u32)
            .map(|task| {
                let b = bus.clone();
                tokio::spawn(async move {
                    let payloads: Vec<Vec<u8>> =
                        (0..100u32).map(|i| (task * 1000 + i).to_le_bytes().to_vec()).collect();
                    let replies = futures::future::join_all(
                        payloads.iter().map(|p| b.call_async(p, 1, Some(T))),
                    )
                    .await;
                    for (p, r) in payloads.iter().zip(replies) {
                        assert_eq!(&r.expect("a reply"), p);
                    }
                    payloads.len()
                })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        n
    });
    assert_eq!(total, 10_000);
    assert_eq!(bus.in_flight(), 0);
    eprintln!("10,000 async shared-memory calls in {:?}", start.elapsed());
}

#[test]
fn shared_memory_futures_time_out_cancel_on_drop_and_see_a_dead_callee() {
    let (_server, path) = shm_server("async-edges");
    let bus = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    futures::executor::block_on(async {
        // An error reply, a deadline, and a dropped future that frees its call.
        match bus.call_async(b"", 999, Some(T)).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, tachyon::rpc::code::UNKNOWN_MSG_TYPE),
            other => panic!("{other:?}"),
        }
        let t = Instant::now();
        let slow = encode(1_000);
        let e = bus.call_async(&slow, 5, Some(Duration::from_millis(100))).await;
        assert!(matches!(e, Err(Error::Timeout(_))), "{e:?}");
        assert!(t.elapsed() >= Duration::from_millis(100), "{:?}", t.elapsed());
        assert_eq!(bus.in_flight(), 0, "the timed-out call was given up");
        {
            let fut = bus.call_async(&slow, 5, Some(T));
            futures::pin_mut!(fut);
            assert!(futures::poll!(fut.as_mut()).is_pending());
        } // dropped while in flight
        assert_eq!(bus.in_flight(), 0, "the dropped call was given up");
        // The late replies are dropped, never misdelivered.
        assert_eq!(bus.call_async(b"next", 1, Some(T)).await.unwrap(), b"next");
    });

    // A callee process killed while a future waits.
    let path = socket_path("async-dead");
    let mut child = tachyon_tests::spawn_peer(&["rpc-serve", "--path", &path]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let mut srv = KillOnDrop(child);
    let bus = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        srv.0.kill().unwrap();
        srv
    });
    // A dead peer: neither the 10 s reply nor the 30 s Timeout.
    let e = futures::executor::block_on(bus.call_async(&encode(10_000), 5, Some(T)));
    assert!(matches!(e, Err(Error::PeerDead(_) | Error::PeerClosed)), "{e:?}");
    drop(killer.join().unwrap());
}

#[test]
fn generated_clients_await_over_both_transports() {
    use tachyon_tests::service::{add, echo, AddReq, AddResp};
    let h = serve(0);
    let tcp = TcpClient::connect(&h.address()).unwrap();
    let (_server, path) = shm_server("async-generated");
    let shm = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    futures::executor::block_on(async {
        assert_eq!(
            add::call_async(&tcp, &AddReq { a: 40, b: 2 }, Some(T)).await.unwrap(),
            AddResp { sum: 42 }
        );
        assert_eq!(
            add::call_async(&shm, &AddReq { a: 1, b: 2 }, Some(T)).await.unwrap(),
            AddResp { sum: 3 }
        );
        assert_eq!(echo::call_async(&tcp, b"raw", Some(T)).await.unwrap(), b"raw");
        assert_eq!(echo::call_async(&shm, b"raw", Some(T)).await.unwrap(), b"raw");
        // Through the trait object too.
        let callers: [&dyn tachyon::rpc::AsyncCaller; 2] = [&tcp, &shm];
        for c in callers {
            assert_eq!(c.invoke_async(b"dyn", 1, Some(T)).await.unwrap(), b"dyn");
        }
    });
}

#[test]
fn schema_generated_clients_await_over_both_transports() {
    use tachyon_tests::schema::{conformance, ConformanceClient, Mirror, Rng};
    let opts = TcpServerOptions::default().workers(2).on_error(|_| {});
    let h = TcpServer::bind("tcp://127.0.0.1:0", opts)
        .unwrap()
        .spawn(Arc::new(conformance::conformance::dispatcher(Mirror::default())))
        .unwrap();
    let tcp = TcpClient::connect(&h.address()).unwrap();
    let path = socket_path("async-schema");
    let server = RpcServer::bind(&path, ServerOptions::default())
        .unwrap()
        .spawn(Arc::new(conformance::conformance::dispatcher(Mirror::default())));
    let shm = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    let mut rng = Rng(11);
    futures::executor::block_on(async {
        let over_tcp = ConformanceClient::new(&tcp).with_timeout(T);
        let over_shm = ConformanceClient::new(&shm).with_timeout(T);
        for _ in 0..50 {
            let v = rng.everything(2);
            assert_eq!(over_tcp.mirror_async(&v).await.unwrap(), v);
            assert_eq!(over_shm.mirror_async(&v).await.unwrap(), v);
        }
        let mut v = rng.everything(0);
        v.text = "reject".into();
        assert!(matches!(over_tcp.check_async(&v).await, Err(Error::Rpc(_))));
    });
    drop(server);
}

// ---- async handlers ------------------------------------------------------------------

fn async_server(handlers: tachyon::net::AsyncHandlers) -> TcpServerHandle {
    let opts = TcpServerOptions::default().deferred(handlers.into_deferred()).on_error(|_| {});
    let server = TcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
    server.spawn(Arc::new(tachyon::rpc::Dispatcher::new())).unwrap()
}

fn routes(
    handlers: tachyon::net::AsyncHandlers,
    sleep: impl Fn(Duration) -> tachyon::rpc::BoxFuture<'static, ()> + Send + Sync + 'static,
) -> tachyon::net::AsyncHandlers {
    use tachyon::rpc::ServerError;
    let sleep = Arc::new(sleep);
    handlers
        .route(1, |req| async move { Ok(req) })
        .route_typed(5, move |ms: u64| {
            let nap = sleep(Duration::from_millis(ms));
            async move {
                nap.await;
                Ok::<_, ServerError>(ms)
            }
        })
        .route(4, |req| async move {
            // The test sends an empty request: this panics inside the task.
            assert!(!req.is_empty(), "async kaboom");
            Ok(req)
        })
}

/// One slow call (500 ms asleep in its task) and many quick ones on the same connection:
/// the quick ones all finish first.
async fn slow_does_not_block_quick(client: &impl AsyncCaller) {
    let slow = encode(500);
    let quick: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let slow_call = async {
        let r = client.invoke_async(&slow, 5, Some(T)).await;
        (r, Instant::now())
    };
    let quick_calls =
        futures::future::join_all(quick.iter().map(|q| client.invoke_async(q, 1, Some(T))));
    let ((slow_reply, slow_done), (quick_replies, quick_done)) = futures::join!(slow_call, async {
        let r = quick_calls.await;
        (r, Instant::now())
    });
    assert!(quick_done < slow_done, "the quick calls waited for the slow one");
    for (q, r) in quick.iter().zip(quick_replies) {
        assert_eq!(&r.unwrap(), q);
    }
    assert_eq!(decode(&slow_reply.unwrap()), 500);
    match client.invoke_async(b"", 4, Some(T)).await {
        Err(Error::Rpc(e)) => {
            assert_eq!(e.code, tachyon::rpc::code::HANDLER_PANIC);
            assert!(e.message.contains("async kaboom"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    match client.invoke_async(b"", 77, Some(T)).await {
        Err(Error::Rpc(e)) => assert_eq!(e.code, tachyon::rpc::code::UNKNOWN_MSG_TYPE),
        other => panic!("{other:?}"),
    }
}

#[test]
fn async_handlers_on_tokio_a_slow_one_does_not_block_the_others() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handle = rt.handle().clone();
    let handlers = tachyon::net::AsyncHandlers::new(move |task| drop(handle.spawn(task)));
    let h = async_server(routes(handlers, |d| Box::pin(tokio::time::sleep(d))));
    let client = TcpClient::connect(&h.address()).unwrap();
    rt.block_on(slow_does_not_block_quick(&client));
}

#[test]
fn async_handlers_over_shared_memory_a_slow_one_does_not_block_the_client_s_other_calls() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handle = rt.handle().clone();
    let handlers = tachyon::net::AsyncHandlers::new(move |task| drop(handle.spawn(task)));
    let dispatcher = routes(handlers, |d| Box::pin(tokio::time::sleep(d)))
        .route(6, |_| async move {
            std::future::pending::<()>().await;
            Ok(Vec::new())
        })
        .into_dispatcher(Duration::from_secs(1));
    let path = socket_path("async-overlap-shm");
    let _server =
        RpcServer::bind(&path, ServerOptions::default()).unwrap().spawn(Arc::new(dispatcher));
    // One client (one bus): its calls overlap on the server.
    let bus = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    rt.block_on(async {
        slow_does_not_block_quick(&bus).await;
        // A handler that never answers: HANDLER_ERROR at the server's timeout, while
        // the others keep answering.
        let (stuck, quick) =
            futures::join!(bus.call_async(b"", 6, Some(T)), bus.call_async(b"q", 1, Some(T)));
        assert_eq!(quick.unwrap(), b"q");
        match stuck {
            Err(Error::Rpc(e)) => {
                assert_eq!(e.code, tachyon::rpc::code::HANDLER_ERROR);
                assert!(e.message.contains("did not answer"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        // Many calls from many tasks, replies in any order, none lost.
        let calls = (0..2_000u64).map(|i| {
            let ms = i % 3;
            let bus = &bus;
            async move { (ms, bus.call_async(&encode(ms), 5, Some(T)).await) }
        });
        for (ms, r) in futures::future::join_all(calls).await {
            assert_eq!(decode(&r.unwrap()), ms);
        }
    });
}

#[test]
fn a_dispatcher_with_deferred_requests_answers_them_from_other_threads_as_they_finish() {
    let mut d = tachyon::rpc::Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).unwrap();
    let (oneway_tx, oneway_rx) = std::sync::mpsc::channel();
    d.set_deferred(Some(Duration::from_millis(500)), move |req| {
        if req.is_oneway() {
            let _ = oneway_tx.send(req.payload.clone());
            return req.fail(tachyon::rpc::ServerError::new(2, "nobody hears this"));
        }
        match req.msg_type {
            // Answered later, from another thread, after `ms` milliseconds.
            5 => {
                std::thread::spawn(move || {
                    let ms = decode(&req.payload);
                    std::thread::sleep(Duration::from_millis(ms));
                    let body = req.payload.clone();
                    req.reply(body);
                });
            }
            // Dropped unanswered: HANDLER_ERROR.
            6 => drop(req),
            // Kept past the timeout, then answered: the caller already had its error.
            _ => {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(800));
                    req.reply(b"too late".to_vec());
                });
            }
        }
    });
    let path = socket_path("deferred-dispatcher");
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = errors.clone();
    let opts = ServerOptions::default().on_error(move |e| seen.lock().unwrap().push(e.to_string()));
    let _server = RpcServer::bind(&path, opts).unwrap().spawn(Arc::new(d));
    let bus = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    futures::executor::block_on(async {
        let order = std::sync::Mutex::new(Vec::new());
        let call = |ms: u64| {
            let (bus, order) = (&bus, &order);
            async move {
                let r = bus.call_async(&encode(ms), 5, Some(T)).await.unwrap();
                order.lock().unwrap().push(decode(&r));
            }
        };
        // Sent slowest first; inline calls in between are answered at once.
        let ((), (), (), echo) =
            futures::join!(call(300), call(150), call(0), bus.call_async(b"inline", 1, Some(T)));
        assert_eq!(echo.unwrap(), b"inline");
        assert_eq!(*order.lock().unwrap(), [0, 150, 300], "replies go out as they finish");
        for (mt, code) in
            [(6u16, tachyon::rpc::code::HANDLER_ERROR), (7, tachyon::rpc::code::HANDLER_ERROR)]
        {
            match bus.call_async(b"x", mt, Some(T)).await {
                Err(Error::Rpc(e)) => assert_eq!(e.code, code, "{mt}: {}", e.message),
                other => panic!("{mt}: {other:?}"),
            }
        }
        // The late answer to msg_type 7 is dropped: the next call gets its own reply.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(bus.call_async(&encode(1), 5, Some(T)).await.unwrap(), encode(1));
    });
    // A oneway request reaches the deferred handler; its failure is reported.
    let raw = RpcBus::connect(&path).unwrap();
    raw.notify(b"fire", 9).unwrap();
    assert_eq!(oneway_rx.recv_timeout(T).unwrap(), b"fire");
    let deadline = Instant::now() + T;
    while !errors.lock().unwrap().iter().any(|e| e.contains("nobody hears this")) {
        assert!(Instant::now() < deadline, "{:?}", errors.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn async_handlers_on_a_futures_thread_pool() {
    let pool = futures::executor::ThreadPool::builder().pool_size(2).create().unwrap();
    let handlers = tachyon::net::AsyncHandlers::new(move |task| pool.spawn_ok(task));
    // A timer without tokio: a thread per sleep is enough for a test.
    let sleep = |d: Duration| -> tachyon::rpc::BoxFuture<'static, ()> {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            let _ = tx.send(());
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    };
    let h = async_server(routes(handlers, sleep));
    let client = TcpClient::connect(&h.address()).unwrap();
    futures::executor::block_on(slow_does_not_block_quick(&client));
}

// ---- #[tachyon_rpc] async fn ----------------------------------------------------------

mod async_service {
    use std::time::Duration;

    use tachyon::rpc::ServerError;
    use tachyon::tachyon_rpc;
    use tachyon_tests::service::{AddReq, AddResp};

    /// Typed, fallible, and awaiting a timer.
    #[tachyon_rpc(msg_type = 21)]
    pub async fn add_later(req: AddReq) -> Result<AddResp, ServerError> {
        tokio::time::sleep(Duration::from_millis(u64::try_from(req.a.max(0)).unwrap_or(0))).await;
        if req.b < 0 {
            return Err(ServerError::new(422, "b must not be negative"));
        }
        Ok(AddResp { sum: req.a + req.b })
    }

    /// Raw bytes in (borrowed across the await), plain bytes out.
    #[tachyon_rpc(msg_type = 22)]
    pub async fn shout(req: &[u8]) -> Vec<u8> {
        tokio::task::yield_now().await;
        req.to_ascii_uppercase()
    }

    /// Panics in its task.
    #[tachyon_rpc(msg_type = 23)]
    pub async fn explode(req: String) -> String {
        tokio::task::yield_now().await;
        assert!(req.is_empty(), "exploded on {req}");
        req
    }
}

#[test]
fn tachyon_rpc_async_fn_handlers_serve_on_tokio() {
    use async_service::{add_later, explode, shout};
    use tachyon_tests::service::{AddReq, AddResp};
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let spawner = rt.handle().clone();
    let handlers = tachyon::net::AsyncHandlers::new(move |task| drop(spawner.spawn(task)))
        .register(add_later::Endpoint)
        .register(shout::Endpoint)
        .register(explode::Endpoint);
    let h = async_server(handlers);
    let client = TcpClient::connect(&h.address()).unwrap();
    rt.block_on(async {
        // The slow call (300 ms asleep) does not hold up the quick ones behind it.
        let slow = async {
            let r = add_later::call_async(&client, &AddReq { a: 300, b: 1 }, Some(T)).await;
            (r, Instant::now())
        };
        let quick = async {
            let r = shout::call_async(&client, b"quiet", Some(T)).await;
            (r, Instant::now())
        };
        let ((slow, slow_at), (quick, quick_at)) = futures::join!(slow, quick);
        assert_eq!(quick.unwrap(), b"QUIET");
        assert!(quick_at < slow_at, "the quick call waited for the slow one");
        assert_eq!(slow.unwrap(), AddResp { sum: 301 });
        match add_later::call_async(&client, &AddReq { a: 0, b: -1 }, Some(T)).await {
            Err(Error::Rpc(e)) => {
                assert_eq!((e.code, e.message.as_str()), (422, "b must not be negative"));
            }
            other => panic!("{other:?}"),
        }
        match explode::call_async(&client, &"boom".to_owned(), Some(T)).await {
            Err(Error::Rpc(e)) => {
                assert_eq!(e.code, tachyon::rpc::code::HANDLER_PANIC);
                assert!(e.message.contains("exploded on boom"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    });
    // The blocking client calls the same async handlers.
    assert_eq!(shout::call(&client, b"sync").unwrap(), b"SYNC");
}

// ---- Bus::recv_async and Bus::messages -------------------------------------------------

fn producer(path: &str, count: u64) -> KillOnDrop {
    KillOnDrop(tachyon_tests::spawn_peer(&[
        "produce",
        "--path",
        path,
        "--listen",
        "65536",
        "--count",
        &count.to_string(),
        "--max-size",
        "512",
        "--seed",
        "9",
        // It leaves this long after its last message (the stream then ends).
        "--timeout-ms",
        "1000",
    ]))
}

fn connect_retry(path: &str) -> tachyon::Bus {
    let deadline = Instant::now() + T;
    loop {
        match tachyon::Bus::connect(path) {
            Ok(b) => return b,
            Err(Error::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn recv_async_takes_every_message_in_order_from_another_process_under_tokio() {
    const N: u64 = 200_000;
    let path = socket_path("recv-async");
    let _p = producer(&path, N);
    let bus = connect_retry(&path);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut scratch = Vec::new();
        for i in 0..N {
            // The guard is held across an await: it is the bus's zero-copy slot.
            let msg = bus.recv_async().await.unwrap();
            tokio::task::yield_now().await;
            tachyon_tests::verify(9, i, 512, msg.data(), msg.type_id(), &mut scratch).unwrap();
        }
    });
}

#[test]
fn messages_stream_ends_when_the_peer_closes() {
    use futures::StreamExt;
    const N: u64 = 20_000;
    let path = socket_path("recv-stream");
    let _p = producer(&path, N);
    let bus = connect_retry(&path);
    let got = futures::executor::block_on(async {
        let mut scratch = Vec::new();
        let mut n = 0u64;
        let mut stream = bus.messages();
        while let Some(m) = stream.next().await {
            let m = m.unwrap();
            tachyon_tests::verify(9, n, 512, &m.data, m.type_id, &mut scratch).unwrap();
            n += 1;
        }
        n
    });
    assert_eq!(got, N, "every message, then the end when the producer left");
}

// ---- schema-generated async server trait ----------------------------------------------

struct AsyncMirror(std::sync::atomic::AtomicU64);

impl tachyon_tests::schema::ConformanceAsync for AsyncMirror {
    async fn mirror(
        &self,
        req: tachyon_tests::schema::Everything,
    ) -> Result<tachyon_tests::schema::Everything, tachyon::rpc::ServerError> {
        tokio::task::yield_now().await;
        Ok(req)
    }

    async fn check(
        &self,
        req: tachyon_tests::schema::Everything,
    ) -> Result<bool, tachyon::rpc::ServerError> {
        if req.text == "reject" {
            return Err(tachyon_tests::schema::conformance::conformance::errors::rejected("no"));
        }
        Ok(true)
    }

    async fn record(
        &self,
        _req: tachyon_tests::schema::Leaf,
    ) -> Result<(), tachyon::rpc::ServerError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn recorded(&self, _req: Vec<u8>) -> Result<u64, tachyon::rpc::ServerError> {
        Ok(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[test]
fn a_generated_async_server_trait_serves_the_generated_client() {
    use tachyon_tests::schema::{conformance, ConformanceClient, Rng};
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let spawner = rt.handle().clone();
    let handlers = conformance::conformance::async_handlers(
        AsyncMirror(std::sync::atomic::AtomicU64::new(0)),
        tachyon::net::AsyncHandlers::new(move |task| drop(spawner.spawn(task))),
    );
    let h = async_server(handlers);
    let tcp = TcpClient::connect(&h.address()).unwrap();
    let client = ConformanceClient::new(&tcp).with_timeout(T);
    client.verify().expect("describe is served too");
    let mut rng = Rng(5);
    rt.block_on(async {
        for _ in 0..50 {
            let v = rng.everything(2);
            assert_eq!(client.mirror_async(&v).await.unwrap(), v);
        }
        let mut v = rng.everything(0);
        v.text = "reject".into();
        match client.check_async(&v).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, conformance::conformance::errors::REJECTED),
            other => panic!("{other:?}"),
        }
    });
    let leaf = conformance::Leaf { name: "n".into(), tags: vec![] };
    for _ in 0..10 {
        client.record(&leaf).unwrap();
    }
    let deadline = Instant::now() + T;
    while client.recorded(b"").unwrap() < 10 {
        assert!(Instant::now() < deadline, "the oneway calls never all arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn async_fn_handlers_serve_shared_memory_through_a_dispatcher() {
    use async_service::{add_later, explode, shout};
    use tachyon_tests::service::{AddReq, AddResp};
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let spawner = rt.handle().clone();
    let dispatcher = tachyon::net::AsyncHandlers::new(move |task| drop(spawner.spawn(task)))
        .register(add_later::Endpoint)
        .register(shout::Endpoint)
        .register(explode::Endpoint)
        .into_dispatcher(T);
    let path = socket_path("async-handlers-shm");
    let _server =
        RpcServer::bind(&path, ServerOptions::default()).unwrap().spawn(Arc::new(dispatcher));
    let bus = AsyncRpcBus::new(RpcBus::connect(&path).unwrap());
    rt.block_on(async {
        // The handler awaits a tokio timer: it runs on the runtime, not the server thread.
        let sum = add_later::call_async(&bus, &AddReq { a: 20, b: 1 }, Some(T)).await.unwrap();
        assert_eq!(sum, AddResp { sum: 21 });
        assert_eq!(shout::call_async(&bus, b"shm", Some(T)).await.unwrap(), b"SHM");
        match explode::call_async(&bus, &"x".to_owned(), Some(T)).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, tachyon::rpc::code::HANDLER_PANIC),
            other => panic!("{other:?}"),
        }
        match bus.call_async(b"", 999, Some(T)).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, tachyon::rpc::code::UNKNOWN_MSG_TYPE),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_nudge_ends_a_blocked_receive_at_once_and_is_taken_by_its_interrupt_check() {
    // A producer that sends nothing and stays: the receive would block.
    let path = socket_path("nudge");
    let _producer = KillOnDrop(tachyon_tests::spawn_peer(&[
        "produce",
        "--path",
        &path,
        "--listen",
        "65536",
        "--count",
        "0",
        "--timeout-ms",
        "6000",
    ]));
    let bus = connect_retry(&path);
    let nudge = bus.nudge();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        nudge.nudge();
    });
    let own = bus.nudge();
    let mut taken = false;
    let mut check = || {
        taken |= own.take();
        taken
    };
    let t = Instant::now();
    let r = bus.acquire_rx_with(tachyon::Wait::new().interrupt(&mut check).timeout(T));
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    let waited = t.elapsed();
    // Interrupted by the nudge (not the 30 s Timeout), and not before it came.
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    waker.join().unwrap();
    assert!(!own.take(), "the interrupt check took the nudge");
}
