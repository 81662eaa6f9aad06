//! The transport-independent client traits ([`Caller`], [`AsyncCaller`]) for
//! [`TcpClient`], so generated clients call over TCP as over shared memory.

use std::time::Duration;

use super::TcpClient;
use crate::error::Result;
use crate::rpc::{AsyncCaller, BoxFuture, Caller};

impl Caller for TcpClient {
    fn invoke(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<Vec<u8>> {
        TcpClient::invoke(self, payload, msg_type, timeout)
    }

    fn notify(&self, payload: &[u8], msg_type: u16, timeout: Option<Duration>) -> Result<()> {
        TcpClient::notify(self, payload, msg_type, timeout)
    }

    fn open_stream(
        &self,
        payload: &[u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<crate::rpc::ReplyStream<'_>> {
        let cid = self.call_stream(payload, msg_type, timeout)?;
        Ok(crate::rpc::ReplyStream::new(crate::net::rpc::client::TcpStream {
            client: self,
            cid,
            timeout,
            done: false,
        }))
    }
}

impl AsyncCaller for TcpClient {
    fn invoke_async<'a>(
        &'a self,
        payload: &'a [u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(self.call_async(payload, msg_type, timeout))
    }
}
