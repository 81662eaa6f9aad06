//! `NativeTcpClient`: the core's [`tachyon::net::TcpClient`] for `RpcClient` in
//! `lib/tcp.js`. `invoke` blocks; `callAsync` waits on a libuv worker thread, so the
//! event loop keeps running (one worker per pending call: raise `UV_THREADPOOL_SIZE`
//! for many calls in flight at once).

use std::sync::Arc;

use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Either3};
use napi::{Env, Task};
use napi_derive::napi;

use tachyon::net::{ClientTls, TcpClient, TcpClientOptions};

use crate::endpoint::ListenTask;
use crate::errors::{core, msg_type, timeout, BindError, JsError};
use crate::pump::{ErrInfo, Reply, RpcErrorInfo};

/// PEM text for a TLS client: the CA of the server's certificate, and the client's own
/// certificate and key (for a server that requires one).
#[napi(object)]
pub struct ClientTlsPem {
    /// The CA certificates the server's chain must lead to.
    pub ca: Buffer,
    /// The client's certificate chain.
    pub cert: Option<Buffer>,
    /// The client's private key.
    pub key: Option<Buffer>,
    /// The name to check the server's certificate against (default: the host).
    pub server_name: Option<String>,
}

/// A caller over TCP.
#[napi]
pub struct NativeTcpClient {
    client: Arc<TcpClient>,
    /// Open streams and their msg_type (the items carry it).
    streams: std::sync::Mutex<std::collections::HashMap<u64, u16>>,
}

/// The client options from the JS arguments.
fn client_options(
    timeout_ms: Option<f64>,
    connections: Option<u32>,
    tls: Option<ClientTlsPem>,
) -> Result<TcpClientOptions, JsError> {
    let mut opts =
        TcpClientOptions::default().connections(connections.unwrap_or(1).max(1) as usize);
    if let Some(t) = tls {
        let identity = match (&t.cert, &t.key) {
            (Some(c), Some(k)) => Some((&c[..], &k[..])),
            (None, None) => None,
            _ => {
                return Err(crate::errors::arg(
                    "tls.cert needs tls.key, and tls.key needs tls.cert".to_owned(),
                ))
            }
        };
        let mut c = ClientTls::from_pem(&t.ca, identity).map_err(core)?;
        if let Some(name) = t.server_name {
            c = c.server_name(name);
        }
        opts = opts.tls(c);
    }
    if let Some(t) = timeout(timeout_ms)? {
        opts = opts.connect_timeout(t);
    }
    Ok(opts)
}

impl NativeTcpClient {
    fn new(client: TcpClient) -> Self {
        Self { client: Arc::new(client), streams: std::sync::Mutex::default() }
    }
}

#[napi]
impl NativeTcpClient {
    /// Connects to `address` (`tcp://host:port`) within `timeoutMs` (10 s by default),
    /// over TLS 1.3 when `tls` is given.
    #[napi(factory)]
    pub fn connect(
        address: String,
        timeout_ms: Option<f64>,
        connections: Option<u32>,
        tls: Option<ClientTlsPem>,
    ) -> Result<Self, JsError> {
        let opts = client_options(timeout_ms, connections, tls)?;
        Ok(Self::new(TcpClient::connect_with(&address, &opts).map_err(core)?))
    }

    /// `connect` (the TCP and TLS handshakes) on a libuv worker thread. A connection that
    /// completes after the JS side gave up (an aborted signal) is closed there.
    #[napi(ts_return_type = "Promise<NativeTcpClient | ErrInfo>")]
    pub fn connect_async(
        address: String,
        timeout_ms: Option<f64>,
        connections: Option<u32>,
        tls: Option<ClientTlsPem>,
    ) -> Result<AsyncTask<ListenTask<TcpClient, NativeTcpClient>>, JsError> {
        let opts = client_options(timeout_ms, connections, tls)?;
        let open = move || TcpClient::connect_with(&address, &opts);
        Ok(AsyncTask::new(ListenTask::new(open, Self::new)))
    }

    /// Calls `msgType` and waits (blocking) for the reply: its bytes, or the decoded
    /// error reply.
    #[napi]
    pub fn invoke(
        &self,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<Either<Buffer, RpcErrorInfo>, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        match self.client.invoke(payload, mt, t) {
            Ok(data) => Ok(Either::A(data.into())),
            Err(tachyon::Error::Rpc(e)) => Ok(Either::B(e.into())),
            Err(e) => Err(core(e)),
        }
    }

    /// `invoke` on a libuv worker thread.
    #[napi(ts_return_type = "Promise<Buffer | RpcErrorInfo | ErrInfo>")]
    pub fn call_async(
        &self,
        payload: Buffer,
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<AsyncTask<TcpCall>, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        Ok(AsyncTask::new(TcpCall {
            client: self.client.clone(),
            payload: payload.to_vec(),
            msg_type: mt,
            timeout: t,
            out: None,
        }))
    }

    /// Sends a oneway request (no reply).
    #[napi]
    pub fn notify(
        &self,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<(), JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        self.client.notify(payload, mt, t).map_err(core)
    }

    /// Starts a server-streaming call; returns its correlation id for
    /// `nextStreamItemAsync` and `cancelStream`.
    #[napi]
    pub fn call_stream(
        &self,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<f64, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        let cid = self.client.call_stream(payload, mt, t).map_err(core)?;
        self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(cid, mt);
        Ok(cid as f64)
    }

    /// The next item of stream `correlationId` on a libuv worker thread (up to
    /// `timeoutMs`): a Reply with the item, the end (msg_type 0xFFFE), or the error.
    #[napi(ts_return_type = "Promise<Reply | ErrInfo>")]
    pub fn next_stream_item_async(
        &self,
        correlation_id: f64,
        timeout_ms: Option<f64>,
    ) -> Result<AsyncTask<TcpStreamNext>, JsError> {
        let cid = crate::rpc::cid(correlation_id)?;
        let mt = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&cid)
            .copied()
            .ok_or_else(|| crate::errors::arg(format!("{cid} is not a stream of this client")))?;
        Ok(AsyncTask::new(TcpStreamNext {
            client: self.client.clone(),
            cid,
            msg_type: mt,
            timeout: timeout(timeout_ms)?,
            out: None,
        }))
    }

    /// Cancels stream `correlationId`: the server stops at its next item. Idempotent.
    #[napi]
    pub fn cancel_stream(&self, correlation_id: f64) -> Result<(), JsError> {
        let cid = crate::rpc::cid(correlation_id)?;
        self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&cid);
        self.client.cancel_stream(cid);
        Ok(())
    }

    /// Calls sent and not answered.
    #[napi(getter)]
    pub fn in_flight(&self) -> u32 {
        u32::try_from(self.client.in_flight()).unwrap_or(u32::MAX)
    }

    /// The address it connected to.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.client.address().to_owned()
    }
}

/// One call waiting on a libuv worker thread.
pub struct TcpCall {
    client: Arc<TcpClient>,
    payload: Vec<u8>,
    msg_type: u16,
    timeout: Option<std::time::Duration>,
    out: Option<tachyon::Result<Vec<u8>>>,
}

impl Task for TcpCall {
    type Output = ();
    type JsValue = Either3<Buffer, RpcErrorInfo, ErrInfo>;

    fn compute(&mut self) -> napi::Result<()> {
        self.out = Some(self.client.invoke(&self.payload, self.msg_type, self.timeout));
        Ok(())
    }

    fn resolve(&mut self, _env: Env, (): ()) -> napi::Result<Self::JsValue> {
        Ok(match self.out.take() {
            Some(Ok(data)) => Either3::A(data.into()),
            Some(Err(tachyon::Error::Rpc(e))) => Either3::B(e.into()),
            Some(Err(e)) => Either3::C(BindError::Core(e).into()),
            None => Either3::C(BindError::Arg("the call never ran".into()).into()),
        })
    }
}

/// `nextStreamItemAsync` off the JS thread.
pub struct TcpStreamNext {
    client: Arc<TcpClient>,
    cid: u64,
    msg_type: u16,
    timeout: Option<std::time::Duration>,
    out: Option<tachyon::Result<Option<Vec<u8>>>>,
}

impl Task for TcpStreamNext {
    type Output = ();
    type JsValue = Either<Reply, ErrInfo>;

    fn compute(&mut self) -> napi::Result<()> {
        self.out = Some(self.client.next_stream_item(self.cid, self.timeout));
        Ok(())
    }

    fn resolve(&mut self, _env: Env, (): ()) -> napi::Result<Self::JsValue> {
        Ok(match self.out.take() {
            Some(Ok(Some(item))) => Either::A(Reply::new(self.cid, self.msg_type, &item)),
            Some(Ok(None)) => {
                Either::A(Reply::new(self.cid, tachyon::rpc::MSG_TYPE_STREAM_END, &[]))
            }
            Some(Err(tachyon::Error::Rpc(e))) => Either::A(Reply::failed(self.cid, e)),
            Some(Err(e)) => Either::B(BindError::Core(e).into()),
            None => Either::B(BindError::Arg("the wait never ran".into()).into()),
        })
    }
}
