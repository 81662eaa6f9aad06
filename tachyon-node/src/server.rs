//! `NativeServer`: the core's multi-client [`tachyon::rpc::RpcServer`] with every
//! request handed to one JS callback.
//!
//! Each client has its own native thread (the core server's). A request goes to the JS
//! thread through a threadsafe function; the JS layer runs the handler (which may
//! return a Promise) and answers with `respond` or `respondError`. The client's thread
//! waits for that answer up to the reply timeout, so a handler that never answers
//! costs its caller an error reply, not a hang. In Tiga mode the named-call envelope
//! is read natively ([`tachyon::rpc::tiga`]); a malformed one is refused without
//! reaching JS.
//!
//! A streaming msg_type (listed in `ServerConfig::streams`) goes to JS the same way;
//! JS then pushes its items with `streamItem` and ends with `streamEnd` (or
//! `respondError`). The items wait in a small queue that the client's thread sends from:
//! `streamItem` tells JS how full it is, and `streamDrained` settles once there is room
//! again, so a fast JS producer is paced by a slow caller instead of growing memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{AsyncTask, Buffer, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, Task};
use napi_derive::napi;
use tachyon::rpc::{
    code, tiga, Dispatcher, RpcServer, ServerError, ServerHandle, ServerOptions, StreamSink,
};

use crate::errors::{timeout, JsError, NapiExt};
use crate::lock;

/// A request handed to the JS callback.
#[napi(object)]
pub struct IncomingRequest {
    /// Pass it back to `respond` / `respondError`.
    pub request_id: f64,
    /// The request's msg_type.
    pub msg_type: u32,
    /// The method name (Tiga mode: from the envelope, or the decimal msg_type).
    pub method: Option<String>,
    /// The caller's client id (Tiga mode; empty for a numbered call).
    pub client_id: Option<String>,
    /// The request data (without the envelope).
    pub data: Buffer,
    /// A streaming call: answer with `streamItem`s, then `streamEnd` or `respondError`.
    pub stream: bool,
    /// The caller's verified certificate over mutual TLS (TCP only).
    pub peer: Option<PeerInfo>,
}

/// A client's verified certificate (mutual TLS), as the core's X.509 parser read it.
#[napi(object)]
pub struct PeerInfo {
    /// The subject's one CN attribute (none when it has none or several).
    pub common_name: Option<String>,
    /// The subject as written: its RDNs in order, each a list of attributes.
    pub subject: Vec<Vec<NameAttribute>>,
    /// Its DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Its URI subject alternative names.
    pub uri_names: Vec<String>,
    /// Its IP address subject alternative names.
    pub ip_addresses: Vec<String>,
    /// Its e-mail (RFC 822) subject alternative names.
    pub email_addresses: Vec<String>,
    /// The certificate, DER.
    pub certificate: Buffer,
}

/// One attribute of a certificate subject, such as `CN=client-a`.
#[napi(object)]
pub struct NameAttribute {
    /// The attribute type's OID, dotted (`2.5.4.3` for CN).
    pub oid: String,
    /// Its short name where it has a common one (`CN`, `O`, `OU`, ...).
    pub name: Option<String>,
    /// The value decoded by its string type (`#` and hex when it is no string).
    pub value: String,
}

impl From<&tachyon::net::PeerIdentity> for PeerInfo {
    fn from(p: &tachyon::net::PeerIdentity) -> Self {
        Self {
            common_name: p.common_name.clone(),
            subject: p
                .subject
                .iter()
                .map(|rdn| {
                    rdn.iter()
                        .map(|a| NameAttribute {
                            oid: a.oid.clone(),
                            name: a.name.map(str::to_owned),
                            value: a.value.clone(),
                        })
                        .collect()
                })
                .collect(),
            dns_names: p.dns_names.clone(),
            uri_names: p.uri_names.clone(),
            ip_addresses: p.ip_addresses.iter().map(ToString::to_string).collect(),
            email_addresses: p.email_addresses.clone(),
            certificate: p.certificate.clone().into(),
        }
    }
}

/// PEM text for a TLS server: its chain and key, and the client CA (mutual TLS).
#[napi(object)]
pub struct ServerTlsPem {
    /// The certificate chain, leaf first.
    pub cert: Buffer,
    /// The private key.
    pub key: Buffer,
    /// Require client certificates signed by this CA.
    pub ca: Option<Buffer>,
}

/// Items a stream's queue holds before `streamItem` says "full" (JS then awaits
/// `streamDrained`); it accepts more regardless, so nothing is dropped.
const STREAM_HIGH_WATER: usize = 64;

/// What JS pushed for one stream.
enum Pushed {
    Item(Vec<u8>),
    End,
    Failed(ServerError),
}

/// One streaming call between JS (pushing) and the client's thread (sending).
#[derive(Default)]
struct StreamState {
    queue: Mutex<VecDeque<Pushed>>,
    changed: Condvar,
    /// The caller cancelled or the transport failed: JS stops producing.
    stopped: AtomicBool,
}

impl StreamState {
    fn push(&self, p: Pushed) -> usize {
        let mut q = lock(&self.queue);
        q.push_back(p);
        self.changed.notify_all();
        q.len()
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _q = lock(&self.queue);
        self.changed.notify_all();
    }
}

/// JS gets requests in arrays: one per call to it (a TCP reactor's loop turn hands over
/// all it read; a shared-memory client thread hands over one).
type Callback = ThreadsafeFunction<Vec<IncomingRequest>, (), Vec<IncomingRequest>, Status, false>;
type Answer = Result<Vec<u8>, ServerError>;

/// Who waits for JS's answer to a request.
enum Waiter {
    /// A client thread (shared memory), blocked until the answer or the timeout.
    Thread(SyncSender<Answer>),
    /// A TCP call nobody blocks on: the answer goes straight to its connection.
    Deferred(tachyon::net::DeferredCall),
}

/// Requests waiting for JS, by request id.
struct Bridge {
    callback: Mutex<Option<Callback>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    /// Streaming calls JS is producing, by request id.
    streams: Mutex<HashMap<u64, Arc<StreamState>>>,
    next_id: AtomicU64,
    answer_within: Duration,
    tiga: bool,
    /// When [`Bridge::forget_expired`] last ran.
    swept: Mutex<Instant>,
}

impl Bridge {
    /// Hands a request to JS; `Err` if the server is closing.
    fn hand_over(
        &self,
        id: u64,
        msg_type: u16,
        payload: &[u8],
        stream: bool,
    ) -> Result<(), ServerError> {
        let request = self.request(id, msg_type, payload, stream, tachyon::net::peer_identity())?;
        self.deliver(vec![request])
    }

    /// Hands a TCP reactor's batch of calls to JS in one go; each is answered through
    /// `respond` with no thread waiting.
    fn hand_over_batch(&self, calls: Vec<tachyon::net::DeferredCall>) {
        self.forget_expired();
        let mut batch = Vec::with_capacity(calls.len());
        for call in calls {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            match self.request(id, call.msg_type, &call.payload, false, call.peer.clone()) {
                Ok(r) => {
                    lock(&self.pending).insert(id, Waiter::Deferred(call));
                    batch.push(r);
                }
                Err(e) => call.fail(e),
            }
        }
        if !batch.is_empty() && self.deliver(batch).is_err() {
            // Closing: dropping the calls answers them with an error.
            lock(&self.pending).retain(|_, w| !matches!(w, Waiter::Deferred(_)));
        }
    }

    /// Drops the deferred calls the server already answered for JS (its handler timeout
    /// passed, or the caller cancelled), at most once per 100 ms: a handler that never
    /// answers must not keep its call here for ever.
    fn forget_expired(&self) {
        let now = Instant::now();
        {
            let mut last = lock(&self.swept);
            if now.duration_since(*last) < Duration::from_millis(100) {
                return;
            }
            *last = now;
        }
        lock(&self.pending).retain(|_, w| !matches!(w, Waiter::Deferred(c) if c.is_cancelled()));
    }

    fn deliver(&self, batch: Vec<IncomingRequest>) -> Result<(), ServerError> {
        let status = match lock(&self.callback).as_ref() {
            Some(cb) => cb.call(batch, ThreadsafeFunctionCallMode::NonBlocking),
            None => Status::Closing,
        };
        if status == Status::Ok {
            Ok(())
        } else {
            Err(ServerError::new(code::HANDLER_ERROR, "the server is closing"))
        }
    }

    /// The request as JS sees it (the Tiga envelope decoded in Tiga mode).
    fn request(
        &self,
        id: u64,
        msg_type: u16,
        payload: &[u8],
        stream: bool,
        peer: Option<Arc<tachyon::net::PeerIdentity>>,
    ) -> Result<IncomingRequest, ServerError> {
        let (method, client_id, data) = if self.tiga {
            let call = tiga::decode_call(msg_type, payload)?;
            (Some(call.method.into_owned()), Some(call.client_id.to_owned()), call.data)
        } else {
            (None, None, payload)
        };
        Ok(IncomingRequest {
            request_id: id as f64,
            msg_type: u32::from(msg_type),
            method,
            client_id,
            data: data.to_vec().into(),
            stream,
            peer: peer.as_deref().map(PeerInfo::from),
        })
    }

    /// Runs on a client's thread: hands a streaming call to JS and sends what JS
    /// pushes, until its end. JS must push something within the handler timeout.
    fn handle_stream(
        &self,
        msg_type: u16,
        payload: &[u8],
        sink: &mut StreamSink<'_>,
    ) -> Result<(), ServerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(StreamState::default());
        lock(&self.streams).insert(id, state.clone());
        let outcome = self.hand_over(id, msg_type, payload, true).and_then(|()| {
            loop {
                let next = {
                    let deadline = Instant::now() + self.answer_within;
                    let mut q = lock(&state.queue);
                    loop {
                        if let Some(p) = q.pop_front() {
                            if q.len() < STREAM_HIGH_WATER {
                                state.changed.notify_all(); // room again: `streamDrained`
                            }
                            break Some(p);
                        }
                        if state.stopped.load(Ordering::Acquire) {
                            break None;
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(ServerError::new(
                                code::HANDLER_ERROR,
                                format!(
                                    "the stream handler sent nothing for {:?}",
                                    self.answer_within
                                ),
                            ));
                        }
                        q = state
                            .changed
                            .wait_timeout(q, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                };
                match next {
                    Some(Pushed::Item(item)) => sink.send(&item)?,
                    Some(Pushed::End) => return Ok(()),
                    Some(Pushed::Failed(e)) => return Err(e),
                    None => {
                        return Err(ServerError::new(code::HANDLER_ERROR, "the server is closing"))
                    }
                }
            }
        });
        state.stop(); // JS's next `streamItem` says so, and it stops producing
        lock(&self.streams).remove(&id);
        outcome
    }

    fn stream(&self, request_id: f64) -> Option<Arc<StreamState>> {
        lock(&self.streams).get(&(request_id as u64)).cloned()
    }

    /// Runs on a client's thread: hands the request to JS and waits for the answer.
    fn handle(&self, msg_type: u16, payload: &[u8]) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(1);
        lock(&self.pending).insert(id, Waiter::Thread(tx));
        if let Err(e) = self.hand_over(id, msg_type, payload, false) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        match rx.recv_timeout(self.answer_within) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => {
                lock(&self.pending).remove(&id);
                Err(ServerError::new(
                    code::HANDLER_ERROR,
                    format!("the handler did not answer within {:?}", self.answer_within),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(ServerError::new(code::HANDLER_ERROR, "the server closed before answering"))
            }
        }
    }

    fn answer(&self, request_id: f64, answer: Answer) -> bool {
        if let (Err(e), Some(s)) = (&answer, self.stream(request_id)) {
            s.push(Pushed::Failed(e.clone()));
            return true;
        }
        let waiter = lock(&self.pending).remove(&(request_id as u64));
        match waiter {
            Some(Waiter::Thread(s)) => s.send(answer).is_ok(),
            Some(Waiter::Deferred(call)) => {
                let live = !call.is_cancelled();
                match answer {
                    Ok(data) => call.reply(data),
                    Err(e) => call.fail(e),
                }
                live
            }
            None => false,
        }
    }

    /// Fails every request still waiting for JS and stops taking new ones.
    fn shut(&self) {
        drop(lock(&self.callback).take());
        lock(&self.pending).clear(); // dropping the senders wakes their threads
        for s in lock(&self.streams).values() {
            s.stop();
        }
    }
}

/// The native half of `createRpcServer` and the Tiga server.
#[napi]
pub struct NativeServer {
    bridge: Arc<Bridge>,
    handle: Arc<Mutex<Option<Handle>>>,
    path: String,
    stats: tachyon::ServerStatsReader,
}

/// A running server of either transport.
enum Handle {
    Shm(ServerHandle),
    Tcp(tachyon::net::TcpServerHandle),
}

impl Handle {
    fn stop(self) -> tachyon::Result<()> {
        match self {
            Self::Shm(h) => h.stop(),
            Self::Tcp(h) => h.shutdown(),
        }
    }
}

/// How long a JS handler may take before its caller gets an error reply, by default.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// The defaults of the server options: the core's, and the handler timeout this binding
/// adds. `index.d.ts` documents these numbers; a test compares them.
#[napi(object)]
pub struct ServerDefaults {
    /// Request ring bytes per client.
    pub cap_fwd: u32,
    /// Reply ring bytes per client.
    pub cap_rev: u32,
    /// Clients served at once.
    pub max_clients: u32,
    /// How long a handler may take (ms).
    pub handler_timeout_ms: f64,
    /// How long a reply may wait for room (ms).
    pub reply_timeout_ms: f64,
}

/// The server options' defaults (see [`ServerDefaults`]).
#[napi]
#[allow(clippy::cast_precision_loss)] // milliseconds of a few seconds
pub fn server_defaults() -> ServerDefaults {
    let d = ServerOptions::default();
    ServerDefaults {
        cap_fwd: d.cap_fwd as u32,
        cap_rev: d.cap_rev as u32,
        max_clients: d.max_clients as u32,
        handler_timeout_ms: HANDLER_TIMEOUT.as_millis() as f64,
        reply_timeout_ms: d.serve.reply_timeout.map_or(0.0, |t| t.as_millis() as f64),
    }
}

/// Options of [`NativeServer::start`].
#[napi(object)]
pub struct ServerConfig {
    /// Where clients connect.
    pub socket_path: String,
    /// Read the Tiga named-call envelope.
    pub tiga: bool,
    /// Request ring bytes per client.
    pub cap_fwd: Option<u32>,
    /// Reply ring bytes per client.
    pub cap_rev: Option<u32>,
    /// Clients served at once (more are refused).
    pub max_clients: Option<u32>,
    /// How long a handler may take before its caller gets an error reply (ms).
    pub handler_timeout_ms: Option<f64>,
    /// How long a reply may wait for room in a full reply ring (ms).
    pub reply_timeout_ms: Option<f64>,
    /// The msg_types whose handlers stream their replies.
    pub streams: Option<Vec<u32>>,
    /// Over TCP (a `tcp://` address): threads that run streaming handlers (default 4).
    /// Unary calls need none: they reach JS in batches and are answered without a
    /// waiting thread.
    pub workers: Option<u32>,
    /// Over TCP: serve plaintext on an address other than loopback (insecure).
    pub allow_remote: Option<bool>,
    /// Over TCP: TLS 1.3 (mutual with a client CA).
    pub tls: Option<ServerTlsPem>,
}

/// Waits off the JS thread until a stream's queue has room (or it stopped).
pub struct DrainTask {
    state: Option<Arc<StreamState>>,
}

impl Task for DrainTask {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> napi::Result<bool> {
        let Some(state) = &self.state else { return Ok(false) };
        let mut q = lock(&state.queue);
        while q.len() >= STREAM_HIGH_WATER && !state.stopped.load(Ordering::Acquire) {
            q = state.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        Ok(!state.stopped.load(Ordering::Acquire))
    }

    fn resolve(&mut self, _env: Env, open: bool) -> napi::Result<bool> {
        Ok(open)
    }
}

/// `close()` off the JS thread: the client threads may be waiting on JS meanwhile.
pub struct StopTask {
    handle: Arc<Mutex<Option<Handle>>>,
}

impl Task for StopTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        if let Some(h) = lock(&self.handle).take() {
            h.stop().map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))?;
        }
        Ok(())
    }

    fn resolve(&mut self, _env: Env, (): ()) -> napi::Result<()> {
        Ok(())
    }
}

#[napi]
impl NativeServer {
    /// Binds `config.socketPath` and serves every client on its own thread, handing
    /// each request to `onRequest`.
    #[napi(factory)]
    pub fn start(
        config: ServerConfig,
        on_request: Function<'_, Vec<IncomingRequest>, ()>,
    ) -> Result<Self, JsError> {
        let answer_within = timeout(config.handler_timeout_ms)?.unwrap_or(HANDLER_TIMEOUT);
        let callback: Callback =
            on_request.build_threadsafe_function().callee_handled::<false>().build().js()?;
        let bridge = Arc::new(Bridge {
            callback: Mutex::new(Some(callback)),
            pending: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            answer_within,
            tiga: config.tiga,
            swept: Mutex::new(Instant::now()),
        });
        // What is not given is the core's default (see `server_defaults`).
        let mut opts = ServerOptions::default();
        if let Some(t) = timeout(config.reply_timeout_ms)? {
            opts = opts.reply_timeout(Some(t));
        }
        let (cap_fwd, cap_rev) = (opts.cap_fwd, opts.cap_rev);
        opts = opts.capacity(
            config.cap_fwd.map_or(cap_fwd, |c| c as usize),
            config.cap_rev.map_or(cap_rev, |c| c as usize),
        );
        if let Some(n) = config.max_clients {
            opts = opts.max_clients(n as usize);
        }
        let tcp = config.socket_path.starts_with("tcp://");
        let server = if tcp {
            None
        } else {
            Some(RpcServer::bind(&config.socket_path, opts).map_err(crate::errors::core)?)
        };
        let mut dispatcher = Dispatcher::new();
        for mt in config.streams.unwrap_or_default() {
            let mt = crate::errors::msg_type(mt)?;
            let b = bridge.clone();
            dispatcher
                .register_stream_raw(
                    mt,
                    "node stream",
                    move |req: &[u8], sink: &mut StreamSink<'_>| b.handle_stream(mt, req, sink),
                )
                .map_err(|e| crate::errors::arg(e.to_string()))?;
        }
        let b = bridge.clone();
        dispatcher.set_fallback("node", move |mt, req: &[u8]| b.handle(mt, req));
        let stats;
        let (handle, path) = if let Some(server) = server {
            stats = server.stats_reader();
            (Handle::Shm(server.spawn(Arc::new(dispatcher))), config.socket_path)
        } else {
            // Handlers wait for JS on worker threads, so the reactor keeps serving and
            // several calls are with JS at once.
            // Unary calls reach JS in batches, one threadsafe-function call per reactor
            // loop turn, and JS answers them with no thread waiting; streams run on
            // `workers` threads that wait for what JS pushes.
            let b = bridge.clone();
            let mut opts = tachyon::net::TcpServerOptions::default()
                .streams(config.workers.unwrap_or(4).max(1) as usize, Duration::from_secs(30))
                .deferred(move |calls| b.hand_over_batch(calls))
                .handler_timeout(answer_within)
                .allow_remote(config.allow_remote.unwrap_or(false));
            if let Some(t) = &config.tls {
                let tls = tachyon::net::ServerTls::from_pem(&t.cert, &t.key, t.ca.as_deref())
                    .map_err(crate::errors::core)?;
                opts = opts.tls(tls);
            }
            let h = tachyon::net::TcpServer::bind(&config.socket_path, opts)
                .and_then(|s| s.spawn(Arc::new(dispatcher)))
                .map_err(crate::errors::core)?;
            let path = h.address();
            stats = h.stats_reader();
            (Handle::Tcp(h), path)
        };
        Ok(Self { bridge, handle: Arc::new(Mutex::new(Some(handle))), path, stats })
    }

    /// Clients accepted, refused and active, requests answered, protocol errors,
    /// pauses, and error replies by code. Readable after `stop` too.
    #[napi]
    pub fn stats(&self) -> crate::stats::ServerStats {
        self.stats.read().into()
    }

    /// Answers request `requestId` with `data`. False if it is no longer waited for
    /// (timed out, or the server closed).
    #[napi]
    pub fn respond(&self, request_id: f64, data: &[u8]) -> bool {
        self.bridge.answer(request_id, Ok(data.to_vec()))
    }

    /// Queues an item of streaming call `requestId`. Returns the items queued (at
    /// least 64: await `streamDrained` before the next), or -1 once the call is over
    /// (cancelled by its caller, or the server closing): stop producing.
    #[napi]
    pub fn stream_item(&self, request_id: f64, data: &[u8]) -> i32 {
        match self.bridge.stream(request_id) {
            Some(s) if !s.stopped.load(Ordering::Acquire) => {
                i32::try_from(s.push(Pushed::Item(data.to_vec()))).unwrap_or(i32::MAX)
            }
            _ => -1,
        }
    }

    /// Ends streaming call `requestId`. False if it was already over.
    #[napi]
    pub fn stream_end(&self, request_id: f64) -> bool {
        self.bridge.stream(request_id).is_some_and(|s| {
            s.push(Pushed::End);
            true
        })
    }

    /// Settles `true` once streaming call `requestId` has room for more items, `false`
    /// if it is over.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn stream_drained(&self, request_id: f64) -> AsyncTask<DrainTask> {
        AsyncTask::new(DrainTask { state: self.bridge.stream(request_id) })
    }

    /// Answers request `requestId` with the 0xFFFF error reply.
    #[napi]
    pub fn respond_error(&self, request_id: f64, code: u32, message: String) -> bool {
        self.bridge.answer(request_id, Err(ServerError::new(code, message)))
    }

    /// Where the server listens.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// Whether it still serves.
    #[napi(getter)]
    pub fn running(&self) -> bool {
        lock(&self.handle).is_some()
    }

    /// Stops accepting, ends every session and joins the threads (off the JS thread).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<StopTask> {
        self.bridge.shut();
        AsyncTask::new(StopTask { handle: self.handle.clone() })
    }
}
