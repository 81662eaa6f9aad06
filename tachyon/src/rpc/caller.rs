//! [`Caller`]: what a client of any transport can do, so the clients `#[tachyon_rpc]`
//! and the schema generator emit work over shared memory ([`RpcBus`], here) and TCP
//! (`TcpClient`, whose impls live with it in `crate::net`) alike. Every call-like method
//! of the crate takes the payload first, then the msg_type (upstream's `call` order).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::rpc::bus::RpcBus;
use crate::rpc::codec;

/// A client that can call a msg_type and wait for its reply.
///
/// ```no_run
/// use std::time::Duration;
/// use tachyon::rpc::Caller;
///
/// fn ping(client: &impl Caller) -> tachyon::Result<Vec<u8>> {
///     client.invoke(b"ping", 1, Some(Duration::from_secs(1)))
/// }
/// # fn main() -> tachyon::Result<()> {
/// ping(&tachyon::rpc::RpcBus::connect("/tmp/echo.sock")?)?;            // shared memory
/// # #[cfg(feature = "tcp")]
/// ping(&tachyon::net::TcpClient::connect("tcp://127.0.0.1:7000")?)?;   // TCP
/// # Ok(()) }
/// ```
pub trait Caller {
    /// Calls `msg_type` with raw bytes and waits for the reply, all within `timeout`
    /// (`None`: as long as the peer lives).
    ///
    /// # Errors
    /// [`crate::Error::Rpc`] for an error reply, [`crate::Error::Timeout`],
    /// [`crate::Error::PeerDead`], and the transport's own errors.
    fn invoke(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<Vec<u8>>;

    /// Sends a oneway request: the handler runs, no reply comes back (its failure is the
    /// server's to report). `timeout` bounds the wait for room to send.
    ///
    /// # Errors
    /// [`crate::Error::Timeout`], [`crate::Error::PeerDead`], and the transport's own errors.
    fn notify(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<()>;

    /// Starts a server-streaming call: its items come back, in order, from the returned
    /// stream (`timeout` bounds the send and each item). Dropping the stream before its
    /// end cancels the call.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] on a transport that does not carry streams yet;
    /// the transport's errors.
    fn open_stream(
        &self,
        payload: &[u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<crate::rpc::ReplyStream<'_>> {
        let _ = (msg_type, payload, timeout);
        Err(crate::rpc::stream::unsupported("this transport"))
    }

    /// Calls a typed handler: `req` goes out as MessagePack, the reply is decoded.
    ///
    /// # Errors
    /// As [`Caller::invoke`], plus [`crate::Error::Codec`].
    fn invoke_typed<Req, Resp>(
        &self,
        req: &Req,
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let payload = codec::encode(req)?;
        codec::decode(&self.invoke(&payload, msg_type, timeout)?)
    }
}

/// `Caller` through a reference or a shared pointer: every method forwards.
macro_rules! forward_caller {
    ($($ptr:ty),*) => {$(
        impl<T: Caller + ?Sized> Caller for $ptr {
            fn invoke(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<Vec<u8>> {
                (**self).invoke(payload, msg_type, timeout)
            }

            fn notify(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<()> {
                (**self).notify(payload, msg_type, timeout)
            }

            fn open_stream(
                &self,
                payload: &[u8],
                msg_type: u16,
                timeout: Option<Duration>,
            ) -> Result<crate::rpc::ReplyStream<'_>> {
                (**self).open_stream(payload, msg_type, timeout)
            }

            fn invoke_typed<Req, Resp>(
                &self,
                req: &Req,
                msg_type: u16,
                timeout: Option<Duration>,
            ) -> Result<Resp>
            where
                Req: Serialize + ?Sized,
                Resp: DeserializeOwned,
            {
                (**self).invoke_typed(req, msg_type, timeout)
            }
        }
    )*};
}

forward_caller!(&T, std::sync::Arc<T>);

impl Caller for RpcBus {
    fn invoke(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<Vec<u8>> {
        RpcBus::invoke(self, payload, msg_type, timeout)
    }

    fn notify(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<()> {
        self.notify_with(payload, msg_type, crate::shm::wait::Wait::new().timeout_opt(timeout))
    }

    fn open_stream(
        &self,
        payload: &[u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<crate::rpc::ReplyStream<'_>> {
        let cid = self.call_stream_with(
            payload,
            msg_type,
            crate::shm::wait::Wait::new().timeout_opt(timeout),
        )?;
        Ok(crate::rpc::ReplyStream::new(crate::rpc::bus::RpcStream {
            bus: self,
            cid,
            timeout,
            done: false,
        }))
    }

    fn invoke_typed<Req, Resp>(
        &self,
        req: &Req,
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        // The ring's own typed call encodes straight into the request slot's neighbour
        // and decodes the reply in place.
        RpcBus::invoke_typed(self, req, msg_type, timeout)
    }
}

/// A boxed future, as [`AsyncCaller`] returns (the futures of its transports are named
/// types; a trait needs one type for all).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A client whose calls can be awaited, under any executor: [`crate::rpc::AsyncRpcBus`]
/// (shared memory) and `net::TcpClient` (feature `tcp`). The generated clients' `call_async`
/// take one.
///
/// ```no_run
/// use std::time::Duration;
/// use tachyon::rpc::AsyncCaller;
///
/// async fn ping(client: &impl AsyncCaller) -> tachyon::Result<Vec<u8>> {
///     client.invoke_async(b"ping", 1, Some(Duration::from_secs(1))).await
/// }
/// ```
pub trait AsyncCaller: Sync {
    /// Calls `msg_type` with raw bytes; the future completes with the reply, within
    /// `timeout`. Dropping it before then cancels the call.
    fn invoke_async<'a>(
        &'a self,
        payload: &'a [u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<u8>>>;
}

/// Calls a typed handler through an [`AsyncCaller`]: `req` goes out as MessagePack, the
/// reply is decoded.
///
/// # Errors
/// As [`AsyncCaller::invoke_async`], plus [`crate::Error::Codec`].
pub async fn invoke_typed_async<C, Req, Resp>(
    client: &C,
    req: &Req,
    msg_type: u16,
    timeout: Option<Duration>,
) -> Result<Resp>
where
    C: AsyncCaller + ?Sized,
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    let payload = codec::encode(req)?;
    codec::decode(&client.invoke_async(&payload, msg_type, timeout).await?)
}

impl<T: AsyncCaller + ?Sized> AsyncCaller for &T {
    fn invoke_async<'a>(
        &'a self,
        payload: &'a [u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<u8>>> {
        (**self).invoke_async(payload, msg_type, timeout)
    }
}

impl AsyncCaller for crate::rpc::AsyncRpcBus {
    fn invoke_async<'a>(
        &'a self,
        payload: &'a [u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(self.call_async(payload, msg_type, timeout))
    }
}
