//! [`AsyncHandlers`]: `async fn` handlers served on the runtime you give it.
//!
//! A TCP server with these handlers hands its calls over in batches (see
//! [`crate::net::TcpServerOptions::deferred`]), a shared-memory server one at a time
//! without waiting for them (see [`crate::rpc::Dispatcher::set_deferred`]), and each
//! call becomes one task on your spawner (tokio's `Handle::spawn`, a `futures` thread
//! pool, smol, ...). So a slow
//! handler never delays the others on its connection, replies go out in the order they
//! finish, and the reactor never waits for a handler. A handler that panics answers its
//! caller with `HANDLER_PANIC`; an unknown msg_type gets `UNKNOWN_MSG_TYPE`; a call
//! whose caller gave up is skipped if its task has not started.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::net::rpc::deferred::DeferredCall;
use crate::rpc::{code, codec, BoxFuture, DeferredRequest, ServerError};

type Handler =
    Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, ServerError>> + Send + Sync>;
type Spawner = Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>;

/// A table of `async` handlers by msg_type, and how to spawn their tasks.
///
/// With tokio (any executor works: the spawner is yours):
///
/// ```ignore
/// # fn main() -> tachyon::Result<()> {
/// use tachyon::net::{AsyncHandlers, TcpServer, TcpServerOptions};
/// use tachyon::rpc::{Dispatcher, ServerError};
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let handlers = AsyncHandlers::new(move |task| drop(handle.spawn(task)))
///     .route_typed(2, |(a, b): (i64, i64)| async move { Ok::<_, ServerError>(a + b) });
/// let opts = TcpServerOptions::default().deferred(handlers.into_deferred());
/// let server = TcpServer::bind("tcp://127.0.0.1:0", opts)?.spawn(Dispatcher::new().into())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncHandlers {
    routes: HashMap<u16, (Arc<str>, Handler)>,
    spawn: Spawner,
}

impl std::fmt::Debug for AsyncHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routes: Vec<u16> = self.routes.keys().copied().collect();
        routes.sort_unstable();
        f.debug_struct("AsyncHandlers").field("routes", &routes).finish_non_exhaustive()
    }
}

impl AsyncHandlers {
    /// An empty table whose tasks go to `spawn`.
    pub fn new(spawn: impl Fn(BoxFuture<'static, ()>) + Send + Sync + 'static) -> Self {
        Self { routes: HashMap::new(), spawn: Arc::new(spawn) }
    }

    /// Serves `msg_type` with `f`, raw bytes in and out.
    ///
    /// # Panics
    /// If `msg_type` is 0xFFFE or 0xFFFF (reserved) or already routed: a wiring mistake.
    #[must_use]
    pub fn route<F, Fut>(mut self, msg_type: u16, f: F) -> Self
    where
        F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<u8>, ServerError>> + Send + 'static,
    {
        assert!(msg_type < 0xFFFE, "msg_type {msg_type:#x} is reserved");
        let name: Arc<str> = format!("msg_type {msg_type}").into();
        let h: Handler = Arc::new(move |req| Box::pin(f(req)));
        assert!(
            self.routes.insert(msg_type, (name, h)).is_none(),
            "msg_type {msg_type} is routed twice"
        );
        self
    }

    /// Serves `msg_type` with a typed `f`: the request decoded from MessagePack (a bad
    /// one answers `BAD_REQUEST`), the response encoded.
    ///
    /// # Panics
    /// As [`AsyncHandlers::route`].
    #[must_use]
    pub fn route_typed<Req, Resp, F, Fut>(self, msg_type: u16, f: F) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, ServerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.route(msg_type, move |raw: Vec<u8>| {
            let f = f.clone();
            async move {
                let req: Req = codec::decode(&raw)
                    .map_err(|e| ServerError::new(code::BAD_REQUEST, e.to_string()))?;
                let resp = f(req).await?;
                codec::encode(&resp)
                    .map_err(|e| ServerError::new(code::BAD_RESPONSE, e.to_string()))
            }
        })
    }

    /// Registers an endpoint `#[tachyon_rpc]` generated for an `async fn`.
    ///
    /// # Panics
    /// As [`AsyncHandlers::route`].
    #[must_use]
    pub fn register<E: AsyncEndpoint>(self, endpoint: E) -> Self {
        endpoint.route(self)
    }

    /// The handler for [`crate::net::TcpServerOptions::deferred`].
    pub fn into_deferred(self) -> impl Fn(Vec<DeferredCall>) + Send + Sync + 'static {
        move |calls| {
            for call in calls {
                self.start(call);
            }
        }
    }

    /// A dispatcher for the shared-memory [`crate::rpc::RpcServer`]: each call runs as a
    /// task on your spawner and the client's serving thread goes straight back to its
    /// ring (see [`crate::rpc::Dispatcher::set_deferred`]), so a slow handler does not
    /// hold up the client's other calls, and replies go out as they finish. A call not
    /// answered within `timeout` gets `HANDLER_ERROR`.
    pub fn into_dispatcher(self, timeout: std::time::Duration) -> crate::rpc::Dispatcher {
        let mut d = crate::rpc::Dispatcher::new();
        d.set_deferred(Some(timeout), move |req| self.start(req));
        d
    }

    fn start<C: Call>(&self, mut call: C) {
        let Some((name, h)) = self.routes.get(&call.msg_type()).cloned() else {
            let mt = call.msg_type();
            call.fail(ServerError::new(
                code::UNKNOWN_MSG_TYPE,
                format!("no handler for msg_type {mt}"),
            ));
            return;
        };
        (self.spawn)(Box::pin(async move {
            if call.is_cancelled() {
                return; // dropped: the caller gave up, nobody reads an answer
            }
            let work = h(call.take_payload());
            match (CatchUnwind { inner: work }).await {
                Ok(Ok(data)) => call.reply(data),
                Ok(Err(e)) => call.fail(e),
                Err(panic) => call.fail(ServerError::new(
                    code::HANDLER_PANIC,
                    format!("handler `{name}` panicked: {}", panic_text(&*panic)),
                )),
            }
        }));
    }
}

/// A call handed over to be answered later: over TCP ([`DeferredCall`]) or shared
/// memory ([`DeferredRequest`]).
trait Call: Send + 'static {
    fn msg_type(&self) -> u16;
    fn take_payload(&mut self) -> Vec<u8>;
    fn is_cancelled(&self) -> bool;
    fn reply(self, data: Vec<u8>);
    fn fail(self, e: ServerError);
}

impl Call for DeferredCall {
    fn msg_type(&self) -> u16 {
        self.msg_type
    }
    fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }
    fn is_cancelled(&self) -> bool {
        DeferredCall::is_cancelled(self)
    }
    fn reply(self, data: Vec<u8>) {
        DeferredCall::reply(self, data);
    }
    fn fail(self, e: ServerError) {
        DeferredCall::fail(self, e);
    }
}

impl Call for DeferredRequest {
    fn msg_type(&self) -> u16 {
        self.msg_type
    }
    fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn reply(self, data: Vec<u8>) {
        DeferredRequest::reply(self, data);
    }
    fn fail(self, e: ServerError) {
        DeferredRequest::fail(self, e);
    }
}

/// An `async fn` handler as `#[tachyon_rpc]` generates it: `quote::Endpoint` for
/// `async fn quote(req: QuoteReq) -> Result<Quote, ServerError>`.
pub trait AsyncEndpoint {
    /// The msg_type it answers.
    const MSG_TYPE: u16;
    /// The handler's name.
    const NAME: &'static str;
    /// Adds its route to `handlers`.
    fn route(self, handlers: AsyncHandlers) -> AsyncHandlers;
}

/// What a panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

/// Polls a future, turning a panic inside it into an `Err` (the task goes on to answer).
struct CatchUnwind<F> {
    inner: F,
}

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
