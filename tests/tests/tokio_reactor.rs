//! The `tokio` feature: inside a tokio runtime, TCP call futures wait on tokio's reactor
//! and read their replies themselves; no pump thread starts. Its own test binary, so the
//! threads this process runs are this file's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon::net::{TcpClient, TcpClientOptions, TcpServer, TcpServerHandle, TcpServerOptions};
use tachyon::Error;

const T: Duration = Duration::from_secs(30);

fn serve() -> TcpServerHandle {
    let opts = TcpServerOptions::default().workers(4).on_error(|_| {});
    let server = TcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
    server.spawn(Arc::new(tachyon_tests::service::dispatcher())).unwrap()
}

fn encode(ms: u64) -> Vec<u8> {
    tachyon::rpc::codec::encode(&ms).unwrap()
}

fn decode(b: &[u8]) -> u64 {
    tachyon::rpc::codec::decode(b).unwrap()
}

/// The names of this process's threads.
fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect()
}

fn pumps() -> usize {
    threads().iter().filter(|n| n.starts_with("tachyon-tcp-pum")).count()
}

#[test]
fn on_tokio_calls_wait_on_its_reactor_beside_blocking_callers_and_keep_their_deadlines() {
    let h = serve();
    let opts = TcpClientOptions::default().connections(1).max_in_flight(64);
    let client = Arc::new(TcpClient::connect_with(&h.address(), &opts).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // A blocking caller on another thread shares the connection (it reads for everyone
    // while its call waits; the futures take over when it stops).
    let blocking = {
        let c = client.clone();
        std::thread::spawn(move || {
            for i in 0..2_000u32 {
                let p = i.to_le_bytes();
                assert_eq!(c.invoke(&p, 1, Some(T)).unwrap(), p);
            }
        })
    };
    rt.block_on(async {
        // Many calls at once, some slow (answered out of order), all on one connection.
        for round in 0..5u64 {
            let calls = (0..200u64).map(|i| {
                let ms = (i + round) % 4;
                let c = &client;
                async move { (ms, c.call_async(&encode(ms), 5, Some(T)).await) }
            });
            for (ms, r) in futures::future::join_all(calls).await {
                assert_eq!(decode(&r.unwrap()), ms);
            }
        }
        // A deadline passes while the reply is still coming: the process-wide timer
        // wakes the future.
        let t = Instant::now();
        let e = client.call_async(&encode(2_000), 5, Some(Duration::from_millis(100))).await;
        assert!(matches!(e, Err(Error::Timeout(_))), "{e:?}");
        // A Timeout (the 2 s reply would be Ok), and not before the deadline.
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
    });
    blocking.join().unwrap();
    assert_eq!(pumps(), 0, "no pump thread under tokio: {:?}", threads());
    assert!(threads().iter().any(|n| n == "tachyon-deadlin"), "{:?}", threads());

    // Outside tokio, the same client's futures wait through the pump.
    futures::executor::block_on(async {
        assert_eq!(client.call_async(b"out", 1, Some(T)).await.unwrap(), b"out");
    });
    assert_eq!(pumps(), 1, "{:?}", threads());
}

#[test]
fn on_tokio_a_killed_server_fails_the_waiting_future_with_peer_dead() {
    let (mut srv, addr, _) =
        tachyon_tests::tcp_peer(&["--addr", "tcp://127.0.0.1:0", "--workers", "2"], None);
    let client = TcpClient::connect(&addr).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(client.call_async(b"x", 1, Some(T)).await.unwrap(), b"x");
        let killer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            srv.0.kill().unwrap();
        };
        // PeerDead: neither the 10 s reply nor the 30 s Timeout.
        let slow = encode(10_000);
        let (e, ()) = futures::join!(client.call_async(&slow, 5, Some(T)), killer);
        assert!(matches!(e, Err(Error::PeerDead(_))), "{e:?}");
    });
}
