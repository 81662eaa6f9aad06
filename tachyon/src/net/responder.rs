//! Servers that answer by themselves, on the reactor thread, with no consumer and no
//! callback per request: a TCP echo and a fixed-response HTTP/1.1 server. They are what
//! a benchmark puts against other servers (the Node package's `UringTcpEchoServer` and
//! `UringHttpServer`, ferrings' shapes), so the figure is the transport's and not a
//! language runtime's.
//!
//! Both sit on a [`RawTcpServer`] and keep its rules: what arrives is marked consumed as
//! soon as it is answered, so the high-water mark never pauses them; memory per
//! connection is a few bytes of parser state.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::net::raw::{RawEvent, RawServerHandle, RawTcpServer};

/// What a [`Responder`] server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Responder {
    /// Every byte back, in order.
    Echo,
    /// The same HTTP/1.1 response to every request, keep-alive.
    Http(FixedHttp),
}

/// A fixed HTTP/1.1 response: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedHttp {
    response: Vec<u8>,
}

impl FixedHttp {
    /// `200 OK`, `text/plain`, with `body`.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self { response: head(200, "text/plain; charset=utf-8", &body.into()) }
    }

    /// A response with `status` (100..=599) and `content_type` (no CR or LF).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a status out of range or a content type that would
    /// break the header.
    pub fn with(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Result<Self> {
        if !(100..=599).contains(&status) {
            return Err(Error::InvalidArgument(format!(
                "an HTTP status is in 100..=599, got {status}"
            )));
        }
        if content_type.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(Error::InvalidArgument("a content type has no CR or LF".into()));
        }
        Ok(Self { response: head(status, content_type, &body.into()) })
    }

    /// The whole response, header and body, as it goes on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.response
    }
}

/// The response: status line, headers, `body`.
fn head(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: keep-alive\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Counts complete HTTP request heads (each ends with an empty line, `CRLF CRLF`) in a
/// stream that arrives in arbitrary pieces. Requests are answered by their heads: a
/// benchmark client sends none with a body, and a body is read as more header lines.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeadCounter {
    /// How much of `\r\n\r\n` the bytes seen so far end with (0..=3).
    matched: u8,
}

impl HeadCounter {
    /// Feeds `bytes`; returns how many request heads they completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> usize {
        const END: &[u8; 4] = b"\r\n\r\n";
        let mut heads = 0;
        for &b in bytes {
            let m = usize::from(self.matched);
            self.matched = if b == END[m] {
                if m == 3 {
                    heads += 1;
                    0
                } else {
                    self.matched + 1
                }
            } else {
                u8::from(b == b'\r')
            };
        }
        heads
    }
}

impl RawTcpServer {
    /// Serves `responder` on the reactor thread: no events reach any consumer.
    ///
    /// # Errors
    /// As [`RawTcpServer::spawn`].
    pub fn spawn_responder(self, responder: Responder) -> Result<RawServerHandle> {
        match responder {
            Responder::Echo => self.spawn_with(|h, events| {
                for e in events {
                    if let RawEvent::Data { conn, data } = e {
                        let n = data.len();
                        h.send(conn, data);
                        h.consumed(conn, n);
                    }
                }
            }),
            Responder::Http(http) => {
                let heads: Mutex<HashMap<u64, HeadCounter>> = Mutex::new(HashMap::new());
                self.spawn_with(move |h, events| {
                    let mut heads = heads.lock().unwrap_or_else(PoisonError::into_inner);
                    for e in events {
                        match e {
                            RawEvent::Data { conn, data } => {
                                let n = heads.entry(conn).or_default().feed(&data);
                                if n > 0 {
                                    h.send(conn, http.bytes().repeat(n));
                                }
                                h.consumed(conn, data.len());
                            }
                            RawEvent::Close { conn } => {
                                heads.remove(&conn);
                            }
                            RawEvent::Open { .. } => {}
                        }
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn request_heads_are_counted_across_any_split() {
        let two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        for cut in 0..two.len() {
            let mut c = HeadCounter::default();
            assert_eq!(c.feed(&two[..cut]) + c.feed(&two[cut..]), 2, "cut at {cut}");
        }
        let mut c = HeadCounter::default();
        assert_eq!(c.feed(b"\r\r\n\r\n"), 1, "a stray CR before the end");
        assert_eq!(c.feed(b"\n\n\r\n\n"), 0);
        let mut c = HeadCounter::default();
        assert_eq!(c.feed(b"a\r\n\r\nb\r\n\r\nc\r\n"), 2);
    }

    #[test]
    fn bad_responses_are_refused() {
        assert!(FixedHttp::with(42, "text/plain", "x").is_err());
        assert!(FixedHttp::with(200, "text/plain\r\nx: y", "x").is_err());
        let ok = FixedHttp::with(404, "application/json", "{}").unwrap();
        assert!(ok.bytes().starts_with(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(ok.bytes().ends_with(b"content-length: 2\r\nconnection: keep-alive\r\n\r\n{}"));
    }

    #[test]
    fn the_http_and_echo_responders_answer_pipelined_requests_over_both_backends() {
        use crate::net::{Backend, RawServerOptions};
        for backend in [Backend::IoUring, Backend::Epoll] {
            let opts = RawServerOptions { backend, ..RawServerOptions::default() };
            let http = RawTcpServer::bind("tcp://127.0.0.1:0", opts.clone()).unwrap();
            let addr = http.local_addr();
            let h = http.spawn_responder(Responder::Http(FixedHttp::new("hi\n"))).unwrap();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HT")
                .unwrap();
            let one = FixedHttp::new("hi\n");
            let mut got = vec![0; one.bytes().len() * 2];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, one.bytes().repeat(2), "{backend:?}");
            s.write_all(b"TP/1.1\r\n\r\n").unwrap();
            let mut third = vec![0; one.bytes().len()];
            s.read_exact(&mut third).unwrap();
            assert_eq!(third, one.bytes());
            h.shutdown().unwrap();

            let echo = RawTcpServer::bind("tcp://127.0.0.1:0", opts).unwrap();
            let addr = echo.local_addr();
            let h = echo.spawn_responder(Responder::Echo).unwrap();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
            let writer = {
                let mut w = s.try_clone().unwrap();
                let d = data.clone();
                std::thread::spawn(move || w.write_all(&d).unwrap())
            };
            let mut back = vec![0; data.len()];
            s.read_exact(&mut back).unwrap();
            writer.join().unwrap();
            assert_eq!(back, data, "{backend:?}");
            h.shutdown().unwrap();
        }
    }
}
