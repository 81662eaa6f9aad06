//! iceoryx2's publish-subscribe over shared memory (feature `iceoryx2`): a ping-pong of
//! two services, and a stream, with the same 32-byte payloads and the same CPU placement
//! as ours. It busy-polls `receive`, as iceoryx2's own benchmark does.

use std::time::{Duration, Instant};

use iceoryx2::prelude::*;

use crate::{child, PAYLOAD, WARMUP};

type Msg = [u8; PAYLOAD];

/// A service as iceoryx2's own benchmark sets one up for ping-pong (a one-sample buffer
/// that overflows safely), or, with a larger `buffer`, for streaming (no overflow: the
/// publisher retries until delivered, so nothing is lost).
fn service(
    node: &Node<ipc::Service>,
    name: &str,
    buffer: usize,
) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, Msg, ()> {
    node.service_builder(&ServiceName::new(name).expect("service name"))
        .publish_subscribe::<Msg>()
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(buffer == 1)
        .open_or_create()
        .expect("iceoryx2 service")
}

fn names(tag: &str) -> (String, String) {
    let id = std::process::id();
    (format!("tachyon-bench/{id}/{tag}/a2b"), format!("tachyon-bench/{id}/{tag}/b2a"))
}

fn node() -> Node<ipc::Service> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new().create::<ipc::Service>().expect("iceoryx2 node")
}

/// Round trips: we publish on a2b and wait on b2a; the child echoes.
pub fn rtt(samples: usize) -> Vec<u64> {
    let (a2b, b2a) = names("rtt");
    let node = node();
    let (sa, sb) = (service(&node, &a2b, 1), service(&node, &b2a, 1));
    let tx = sa
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let rx = sb.subscriber_builder().create().expect("subscriber");
    let total = samples + WARMUP;
    let mut peer = child(&["ice-echo", &a2b, &b2a, &total.to_string()]);
    // Until the child is up: ping with a marker it answers, resending now and then.
    let mut last = Instant::now() - Duration::from_secs(1);
    loop {
        if last.elapsed() > Duration::from_millis(5) {
            tx.loan_uninit().expect("loan").write_payload([0; PAYLOAD]).send().expect("send");
            last = Instant::now();
        }
        if let Some(s) = rx.receive().expect("receive") {
            if s[0] == 0 {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(samples);
    for i in 0..total {
        let t = Instant::now();
        tx.loan_uninit().expect("loan").write_payload([7; PAYLOAD]).send().expect("send");
        loop {
            if let Some(s) = rx.receive().expect("receive") {
                if s[0] == 7 {
                    break;
                }
            }
        }
        if i >= WARMUP {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    assert!(peer.wait().expect("wait child").success());
    out
}

/// The child of [`rtt`]: answers the startup pings (marker 0), then echoes `n` messages.
pub fn echo_child(a2b: &str, b2a: &str, n: usize) {
    let node = node();
    let (sa, sb) = (service(&node, a2b, 1), service(&node, b2a, 1));
    let rx = sa.subscriber_builder().create().expect("subscriber");
    let tx = sb
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let mut echoed = 0;
    while echoed < n {
        let Some(s) = rx.receive().expect("receive") else { continue };
        let marker = s[0];
        drop(s);
        tx.loan_uninit().expect("loan").write_payload([marker; PAYLOAD]).send().expect("send");
        if marker != 0 {
            echoed += 1;
        }
    }
}

/// Messages per second: the child streams `n` messages (after a hello), we receive them.
pub fn throughput(n: usize) -> f64 {
    let (a2b, b2a) = names("stream");
    let node = node();
    let (sa, sb) = (service(&node, &a2b, 1024), service(&node, &b2a, 1));
    let rx = sa.subscriber_builder().create().expect("subscriber");
    let go = sb.publisher_builder().create().expect("publisher");
    let mut peer = child(&["ice-stream", &a2b, &b2a, &n.to_string()]);
    // The child says hello (marker 0) until we answer go.
    loop {
        if let Some(s) = rx.receive().expect("receive") {
            if s[0] == 0 {
                break;
            }
        }
    }
    go.loan_uninit().expect("loan").write_payload([1; PAYLOAD]).send().expect("send");
    let mut got = 0;
    let mut t = None;
    while got < n {
        if let Some(s) = rx.receive().expect("receive") {
            if s[0] == 5 {
                t.get_or_insert_with(Instant::now);
                got += 1;
            }
        }
    }
    let secs = t.map_or(1.0, |t| t.elapsed().as_secs_f64());
    assert!(peer.wait().expect("wait child").success());
    n as f64 / secs
}

/// The child of [`throughput`].
pub fn stream_child(a2b: &str, b2a: &str, n: usize) {
    let node = node();
    let (sa, sb) = (service(&node, a2b, 1024), service(&node, b2a, 1));
    let tx = sa
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let go = sb.subscriber_builder().create().expect("subscriber");
    loop {
        tx.loan_uninit().expect("loan").write_payload([0; PAYLOAD]).send().expect("send");
        std::thread::sleep(Duration::from_millis(1));
        if go.receive().expect("receive").is_some() {
            break;
        }
    }
    for _ in 0..n {
        tx.loan_uninit().expect("loan").write_payload([5; PAYLOAD]).send().expect("send");
    }
    // Keep the node alive until the consumer has read everything.
    std::thread::sleep(Duration::from_millis(500));
}
