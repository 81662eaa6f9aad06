//! `NativeRawServer`: the core's [`tachyon::net::RawTcpServer`] (plain TCP byte streams
//! on the RPC transport's reactors) for `UringTcpServer` and `createTcpServer` in
//! `lib/uring.js`. Each reactor loop turn's events reach JS as one array through one
//! threadsafe function; JS says what it consumed, and a connection whose JS consumer
//! lags stops receiving until it catches up (backpressure, never dropped bytes).
//! `tcpCapabilities` reports the kernel probe.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Buffer, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, Task};
use napi_derive::napi;
use tachyon::net::{
    Backend, FixedHttp, RawEvent, RawServerHandle, RawServerOptions, RawTcpServer, Responder,
};

use crate::errors::{arg, core, JsError, NapiExt};

/// Options of `NativeRawServer.start`.
#[napi(object)]
pub struct RawServerConfig {
    /// Bind address (default 127.0.0.1).
    pub host: Option<String>,
    /// Bind port (default 0: the kernel picks one).
    pub port: Option<u32>,
    /// Most connections at once (default 1024; 0 means the default).
    pub max_connections: Option<u32>,
    /// Bytes delivered to JS and not consumed before a connection pauses (default 1 MiB).
    pub high_water: Option<u32>,
    /// Close a connection idle this long (ms; 0 or absent: never).
    pub idle_timeout_ms: Option<f64>,
    /// Allow a non-loopback address (raw streams have no TLS).
    pub insecure: Option<bool>,
    /// `"auto"` (default), `"io_uring"` or `"epoll"`.
    pub backend: Option<String>,
}

/// One event, as JS sees it.
#[napi(object)]
pub struct RawEventJs {
    /// `"connection"`, `"data"` or `"close"`.
    pub event_type: String,
    /// The connection.
    pub connection_id: f64,
    /// The bytes (`data` only).
    pub data: Option<Buffer>,
    /// The client's address (`connection` only).
    pub remote_address: Option<String>,
    /// The client's port (`connection` only).
    pub remote_port: Option<u32>,
}

/// The server's counters.
#[napi(object)]
pub struct RawServerInfo {
    /// The bound address.
    pub host: String,
    /// The bound port.
    pub port: u32,
    /// `"io_uring"` or `"epoll"`.
    pub backend: String,
    /// Connections accepted.
    pub accepted_connections: f64,
    /// Connections closed at the limit.
    pub rejected_connections: f64,
    /// Connections open now.
    pub active_connections: f64,
    /// Bytes received.
    pub bytes_received: f64,
    /// Bytes sent.
    pub bytes_sent: f64,
    /// Times a connection's receiving paused for its consumer.
    pub backpressure_pauses: f64,
    /// Bytes dropped because a queue was full: always 0 (receiving pauses instead).
    pub dropped_bytes: f64,
}

type Events = ThreadsafeFunction<Vec<RawEventJs>, (), Vec<RawEventJs>, Status, false>;

fn js_event(e: RawEvent) -> RawEventJs {
    let none = |t: &str, conn: u64| RawEventJs {
        event_type: t.to_owned(),
        connection_id: conn as f64,
        data: None,
        remote_address: None,
        remote_port: None,
    };
    match e {
        RawEvent::Open { conn, peer } => RawEventJs {
            remote_address: peer.map(|p| p.ip().to_string()),
            remote_port: peer.map(|p| u32::from(p.port())),
            ..none("connection", conn)
        },
        RawEvent::Data { conn, data } => {
            RawEventJs { data: Some(data.into()), ..none("data", conn) }
        }
        RawEvent::Close { conn } => none("close", conn),
    }
}

fn id(connection_id: f64) -> Result<u64, JsError> {
    if connection_id.is_finite() && connection_id >= 0.0 && connection_id.fract() == 0.0 {
        Ok(connection_id as u64)
    } else {
        Err(arg(format!("{connection_id} is not a connection id")))
    }
}

/// What a responder server answers (`NativeRawServer.startResponder`).
#[napi(object)]
pub struct ResponderConfig {
    /// `"echo"` or `"http"`.
    pub kind: String,
    /// The HTTP response body.
    pub body: Option<Buffer>,
    /// The HTTP content type (default `text/plain; charset=utf-8`).
    pub content_type: Option<String>,
    /// The HTTP status (default 200).
    pub status: Option<u32>,
}

/// Binds the raw server `config` describes.
fn bind(config: RawServerConfig) -> Result<RawTcpServer, JsError> {
    let backend = match config.backend.as_deref().unwrap_or("auto") {
        "auto" => Backend::Auto,
        "io_uring" => Backend::IoUring,
        "epoll" => Backend::Epoll,
        other => return Err(arg(format!("backend must be auto, io_uring or epoll, not {other}"))),
    };
    let mut opts = RawServerOptions {
        backend,
        insecure: config.insecure.unwrap_or(false),
        ..RawServerOptions::default()
    };
    if let Some(n) = config.max_connections.filter(|n| *n > 0) {
        opts.max_connections = n as usize;
    }
    if let Some(n) = config.high_water {
        opts.high_water = n as usize;
    }
    if let Some(ms) = config.idle_timeout_ms.filter(|ms| *ms > 0.0) {
        opts.idle_timeout = Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let host = config.host.unwrap_or_else(|| "127.0.0.1".into());
    let port = config.port.unwrap_or(0);
    if port > 65535 {
        return Err(arg(format!("port must be in 0..=65535, got {port}")));
    }
    let host_part = if host.contains(':') { format!("[{host}]") } else { host };
    RawTcpServer::bind(&format!("tcp://{host_part}:{port}"), opts).map_err(core)
}

/// A raw TCP server whose events go to one JS function.
#[napi]
pub struct NativeRawServer {
    handle: RawServerHandle,
    /// Released on close, so the event loop can exit.
    events: Arc<Mutex<Option<Events>>>,
}

/// `close()` off the JS thread.
pub struct CloseTask {
    handle: RawServerHandle,
    events: Arc<Mutex<Option<Events>>>,
}

impl Task for CloseTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let r = self.handle.shutdown();
        // Events of the shutdown (the closes) went out before the reactor ended.
        self.events.lock().unwrap_or_else(PoisonError::into_inner).take();
        r.map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))
    }

    fn resolve(&mut self, _env: Env, (): ()) -> napi::Result<()> {
        Ok(())
    }
}

#[napi]
impl NativeRawServer {
    /// Binds and serves; `onEvents` gets each batch of events.
    #[napi(factory)]
    pub fn start(
        config: RawServerConfig,
        on_events: Function<'_, Vec<RawEventJs>, ()>,
    ) -> Result<Self, JsError> {
        let server = bind(config)?;
        let tsfn: Events =
            on_events.build_threadsafe_function().callee_handled::<false>().build().js()?;
        let events = Arc::new(Mutex::new(Some(tsfn)));
        let sink = events.clone();
        let handle = server
            .spawn(move |batch| {
                let batch: Vec<RawEventJs> = batch.into_iter().map(js_event).collect();
                if let Some(f) = sink.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                    f.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
                }
            })
            .map_err(core)?;
        Ok(Self { handle, events })
    }

    /// Binds and answers by itself on the reactor thread, with no JS per request:
    /// `responder.kind` `"echo"` (every byte back) or `"http"` (the same HTTP/1.1
    /// response to every request: `body`, `contentType`, `status`). `keepAlive` is
    /// never called: held until `close()`, it keeps the event loop (and so the process)
    /// running while the server serves, as a listening `net.Server` does.
    #[napi(factory)]
    pub fn start_responder(
        config: RawServerConfig,
        responder: ResponderConfig,
        keep_alive: Function<'_, Vec<RawEventJs>, ()>,
    ) -> Result<Self, JsError> {
        let r = match responder.kind.as_str() {
            "echo" => Responder::Echo,
            "http" => {
                let status = u16::try_from(responder.status.unwrap_or(200))
                    .map_err(|_| arg("status must be in 100..=599".to_owned()))?;
                let body = responder.body.map(|b| b.to_vec()).unwrap_or_default();
                let content_type =
                    responder.content_type.as_deref().unwrap_or("text/plain; charset=utf-8");
                Responder::Http(FixedHttp::with(status, content_type, body).map_err(core)?)
            }
            other => return Err(arg(format!("responder kind must be echo or http, not {other}"))),
        };
        let held: Events =
            keep_alive.build_threadsafe_function().callee_handled::<false>().build().js()?;
        let handle = bind(config)?.spawn_responder(r).map_err(core)?;
        Ok(Self { handle, events: Arc::new(Mutex::new(Some(held))) })
    }

    /// Queues `data` on the connection (ignored once it closed).
    #[napi]
    pub fn send(&self, connection_id: f64, data: &[u8]) -> Result<(), JsError> {
        self.handle.send(id(connection_id)?, data.to_vec());
        Ok(())
    }

    /// Closes the connection once what is queued is sent.
    #[napi]
    pub fn end(&self, connection_id: f64) -> Result<(), JsError> {
        self.handle.end(id(connection_id)?);
        Ok(())
    }

    /// Closes the connection now, dropping what is queued.
    #[napi]
    pub fn destroy(&self, connection_id: f64) -> Result<(), JsError> {
        self.handle.destroy(id(connection_id)?);
        Ok(())
    }

    /// `bytes` delivered on the connection were dealt with.
    #[napi]
    pub fn consumed(&self, connection_id: f64, bytes: f64) -> Result<(), JsError> {
        self.handle.consumed(id(connection_id)?, bytes.max(0.0) as usize);
        Ok(())
    }

    /// The counters now.
    #[napi]
    pub fn info(&self) -> RawServerInfo {
        let s = self.handle.stats();
        let a = self.handle.local_addr();
        RawServerInfo {
            host: a.ip().to_string(),
            port: u32::from(a.port()),
            backend: self.handle.backend().name().to_owned(),
            accepted_connections: s.connections.accepted as f64,
            rejected_connections: s.connections.refused as f64,
            active_connections: s.connections.active as f64,
            bytes_received: s.bytes_received as f64,
            bytes_sent: s.bytes_sent as f64,
            backpressure_pauses: s.pauses as f64,
            dropped_bytes: 0.0,
        }
    }

    /// Stops: every connection sends what is queued and closes (each with a `close`
    /// event), then the reactor ends.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<CloseTask> {
        AsyncTask::new(CloseTask { handle: self.handle.clone(), events: self.events.clone() })
    }
}

/// One probed opcode or feature.
#[napi(object)]
pub struct ProbeEntry {
    /// Its name.
    pub name: String,
    /// Whether this kernel supports it.
    pub supported: bool,
}

/// The kernel probe behind the TCP transport.
#[napi(object)]
pub struct TcpCapabilities {
    /// The backend servers pick here: `"io_uring"` or `"epoll"`.
    pub backend: String,
    /// Whether an io_uring could be created.
    pub io_uring: bool,
    /// Why io_uring is not used, if it is not.
    pub io_uring_unavailable: Option<String>,
    /// The `io_uring_disabled` sysctl.
    pub io_uring_disabled_sysctl: Option<u32>,
    /// The opcodes the transport uses.
    pub opcodes: Vec<ProbeEntry>,
    /// The features and setup flags it uses.
    pub features: Vec<ProbeEntry>,
}

/// The kernel's io_uring support, as the TCP transport sees it.
#[napi]
pub fn tcp_capabilities() -> TcpCapabilities {
    let c = tachyon::net::capabilities();
    let entries = |v: &[(&str, bool)]| {
        v.iter().map(|(n, ok)| ProbeEntry { name: (*n).to_owned(), supported: *ok }).collect()
    };
    TcpCapabilities {
        backend: c.backend.name().to_owned(),
        io_uring: c.io_uring,
        io_uring_unavailable: c.io_uring_unavailable.clone(),
        io_uring_disabled_sysctl: c.io_uring_disabled_sysctl.map(u32::from),
        opcodes: entries(&c.opcodes),
        features: entries(&c.features),
    }
}
