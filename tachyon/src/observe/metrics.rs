//! Publishes bus and server counters through the [`metrics`] facade (feature `metrics`),
//! so whatever exporter the program installed (Prometheus, StatsD, ...) shows them.
//!
//! Names (counters unless noted), each labelled `bus` or `server` with the name given:
//! - `tachyon_bus_sent_messages`, `_sent_bytes`, `_received_messages`, `_received_bytes`,
//!   `_full_waits`, `_sleeps`, `_watchdog_rescues`, `_wakes`, `_timeouts`, `_peer_deaths`, `_protocol_errors`;
//! - `tachyon_server_accepted`, `_refused`, `_requests`, `_protocol_errors`, `_paused`,
//!   the gauge `tachyon_server_active`, and `tachyon_server_errors` with a `code` label.
//!
//! ```no_run
//! # fn main() -> tachyon::Result<()> {
//! let bus = tachyon::Bus::connect("/tmp/demo.sock")?;
//! // Every second, until `publisher` is dropped:
//! let publisher = tachyon::metrics::Publisher::new()
//!     .bus("orders", bus.stats_reader())
//!     .spawn(std::time::Duration::from_secs(1))?;
//! # drop(publisher); Ok(()) }
//! ```

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::observe::stats::{ServerStatsReader, StatsReader};

/// What to publish: named buses and servers.
#[derive(Debug, Clone, Default)]
pub struct Publisher {
    buses: Vec<(String, StatsReader)>,
    servers: Vec<(String, ServerStatsReader)>,
}

impl Publisher {
    /// Publishes nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a bus (from [`crate::Bus::stats_reader`] or [`crate::rpc::RpcBus::stats_reader`])
    /// under the label `bus = name`.
    #[must_use]
    pub fn bus(mut self, name: impl Into<String>, reader: StatsReader) -> Self {
        self.buses.push((name.into(), reader));
        self
    }

    /// Adds a server (from `RpcServer::stats_reader` or `TcpServerHandle::stats_reader`)
    /// under the label `server = name`.
    #[must_use]
    pub fn server(mut self, name: impl Into<String>, reader: ServerStatsReader) -> Self {
        self.servers.push((name.into(), reader));
        self
    }

    /// Publishes every counter once, to the recorder installed now.
    pub fn publish(&self) {
        for (name, reader) in &self.buses {
            for (field, v) in reader.read().fields() {
                metrics::counter!(format!("tachyon_bus_{field}"), "bus" => name.clone())
                    .absolute(v);
            }
        }
        for (name, reader) in &self.servers {
            let s = reader.read();
            for (field, v) in s.fields() {
                if field == "active" {
                    #[allow(clippy::cast_precision_loss)] // a client count
                    metrics::gauge!("tachyon_server_active", "server" => name.clone())
                        .set(v as f64);
                } else {
                    metrics::counter!(format!("tachyon_server_{field}"), "server" => name.clone())
                        .absolute(v);
                }
            }
            for (code, n) in &s.errors {
                metrics::counter!("tachyon_server_errors", "server" => name.clone(), "code" => code.to_string())
                    .absolute(*n);
            }
        }
    }

    /// Publishes every `interval` on a background thread, until the returned guard is
    /// dropped (it publishes once more then, so the last counts are not lost).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero interval; [`Error::Io`] if the thread cannot
    /// start.
    pub fn spawn(self, interval: Duration) -> Result<PublisherGuard> {
        if interval.is_zero() {
            return Err(Error::InvalidArgument("the publishing interval must not be zero".into()));
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tachyon-metrics".into())
            .spawn(move || loop {
                self.publish();
                let (lock, cv) = &*flag;
                let stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let (stopped, _) = cv
                    .wait_timeout_while(stopped, interval, |s| !*s)
                    .unwrap_or_else(PoisonError::into_inner);
                if *stopped {
                    self.publish();
                    return;
                }
            })
            .map_err(|e| Error::io("spawn the metrics thread", e))?;
        Ok(PublisherGuard { stop, thread: Some(thread) })
    }
}

/// Stops a [`Publisher::spawn`] thread when dropped.
#[derive(Debug)]
pub struct PublisherGuard {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for PublisherGuard {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_precision_loss)] // test counts are small
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    use super::*;

    /// Keeps the last value of every metric as `name{label=value,...}`.
    #[derive(Default, Clone)]
    struct Last(Arc<Mutex<BTreeMap<String, f64>>>);

    struct Slot(Last, String);

    impl CounterFn for Slot {
        fn increment(&self, v: u64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += v as f64;
        }
        fn absolute(&self, v: u64) {
            self.0 .0.lock().unwrap().insert(self.1.clone(), v as f64);
        }
    }

    impl GaugeFn for Slot {
        fn increment(&self, v: f64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += v;
        }
        fn decrement(&self, v: f64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() -= v;
        }
        fn set(&self, v: f64) {
            self.0 .0.lock().unwrap().insert(self.1.clone(), v);
        }
    }

    impl Last {
        fn slot(&self, key: &Key) -> Arc<Slot> {
            let labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            Arc::new(Slot(self.clone(), format!("{}{{{}}}", key.name(), labels.join(","))))
        }
        fn get(&self, k: &str) -> Option<f64> {
            self.0.lock().unwrap().get(k).copied()
        }
    }

    impl Recorder for Last {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.slot(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.slot(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// A connected (sender, receiver) pair in this process.
    fn pair(name: &str) -> (crate::Bus, crate::Bus) {
        let path = format!("/tmp/tachyon-metrics-{name}-{}.sock", std::process::id());
        let p = path.clone();
        let listener = std::thread::spawn(move || crate::Bus::listen(&p, 1 << 12).unwrap());
        let sender = loop {
            match crate::Bus::connect(&path) {
                Ok(b) => break b,
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        (sender, listener.join().unwrap())
    }

    #[test]
    fn bus_counters_are_published_under_the_bus_label() {
        let (sender, receiver) = pair("plain");
        for i in 0..5u8 {
            sender.send(&[i; 10], 1).unwrap();
        }
        for _ in 0..5 {
            receiver.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        let last = Last::default();
        let publisher =
            Publisher::new().bus("out", sender.stats_reader()).bus("in", receiver.stats_reader());
        metrics::with_local_recorder(&last, || publisher.publish());
        assert_eq!(last.get("tachyon_bus_sent_messages{bus=out}"), Some(5.0));
        assert_eq!(last.get("tachyon_bus_sent_bytes{bus=out}"), Some(50.0));
        assert_eq!(last.get("tachyon_bus_received_messages{bus=in}"), Some(5.0));
        assert_eq!(last.get("tachyon_bus_received_messages{bus=out}"), Some(0.0));
        assert_eq!(last.get("tachyon_bus_peer_deaths{bus=in}"), Some(0.0));
    }

    #[cfg(feature = "rpc")]
    #[test]
    fn server_counters_gauges_and_error_codes_are_published() {
        use crate::rpc::{Dispatcher, RpcBus, RpcServer, ServerOptions};
        let path = format!("/tmp/tachyon-metrics-srv-{}.sock", std::process::id());
        let mut d = Dispatcher::new();
        d.register_raw(1, "echo", |r: &[u8]| r.to_vec()).unwrap();
        let server = RpcServer::bind(&path, ServerOptions::default()).unwrap();
        let publisher = Publisher::new().server("api", server.stats_reader());
        let handle = server.spawn(Arc::new(d));
        let client = loop {
            match RpcBus::connect(&path) {
                Ok(b) => break b,
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let t = Some(Duration::from_secs(5));
        assert_eq!(client.invoke(b"hi", 1, t).unwrap(), b"hi");
        assert!(client.invoke(b"?", 9, t).is_err());
        let last = Last::default();
        metrics::with_local_recorder(&last, || publisher.publish());
        assert_eq!(last.get("tachyon_server_accepted{server=api}"), Some(1.0));
        assert_eq!(last.get("tachyon_server_active{server=api}"), Some(1.0));
        assert_eq!(last.get("tachyon_server_requests{server=api}"), Some(2.0));
        let unknown = crate::rpc::code::UNKNOWN_MSG_TYPE;
        assert_eq!(
            last.get(&format!("tachyon_server_errors{{server=api,code={unknown}}}")),
            Some(1.0)
        );
        drop(client);
        handle.stop().unwrap();
    }

    /// The only test that installs a global recorder (once per process).
    #[test]
    fn a_spawned_publisher_publishes_until_dropped_and_once_more_then() {
        let last = Last::default();
        metrics::set_global_recorder(last.clone()).unwrap();
        let (sender, _receiver) = pair("spawn");
        let guard = Publisher::new()
            .bus("live", sender.stats_reader())
            .spawn(Duration::from_millis(10))
            .unwrap();
        sender.send(b"one", 1).unwrap();
        let key = "tachyon_bus_sent_messages{bus=live}";
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while last.get(key) != Some(1.0) {
            assert!(std::time::Instant::now() < deadline, "never published");
            std::thread::sleep(Duration::from_millis(5));
        }
        sender.send(b"two", 1).unwrap();
        drop(guard); // publishes once more on its way out
        assert_eq!(last.get(key), Some(2.0));
    }

    #[test]
    fn a_zero_interval_is_refused() {
        assert!(matches!(Publisher::new().spawn(Duration::ZERO), Err(Error::InvalidArgument(_))));
    }
}
