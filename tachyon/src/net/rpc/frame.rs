//! The TCP frame format (version 1), documented byte by byte in `docs/TCP.md`.
//!
//! Every frame is a 24-byte little-endian header and `len` payload bytes:
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `len` u32 | payload bytes after the header, at most the negotiated maximum |
//! | 4 | `kind` u8 | [`Kind`] |
//! | 5 | `flags` u8 | 0 in version 1 |
//! | 6 | reserved u16 | 0 |
//! | 8 | `type_id` u32 | `route << 16 \| msg_type` (requests and replies), else 0 |
//! | 12 | `deadline_us` u32 | requests: remaining budget in microseconds, 0 = none |
//! | 16 | `correlation_id` u64 | requests, replies, cancels: the call; ping/pong: a token |
//!
//! A reply with msg_type 0xFFFF carries the same error payload as on shared memory.
//! Everything here is pure (no I/O) and treats its input as hostile.

use crate::rpc::MSG_TYPE_ERROR;

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 24;
/// The frame format version this crate speaks.
pub const VERSION: u16 = 1;
/// `"TCHT"`: the first bytes of a hello's payload.
pub const HELLO_MAGIC: [u8; 4] = *b"TCHT";
/// Bytes of a hello's payload.
pub const HELLO_LEN: usize = 16;
/// The largest payload a frame may announce, whatever is negotiated (1 GiB).
pub const MAX_FRAME_LIMIT: u32 = 1 << 30;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The first frame each way: version and limits.
    Hello = 1,
    /// A call.
    Request = 2,
    /// The answer to a call (msg_type 0xFFFF for an error).
    Reply = 3,
    /// The caller gave up on a call; the server may skip it.
    Cancel = 4,
    /// Are you there? Answered by a pong with the same token.
    Ping = 5,
    /// The answer to a ping.
    Pong = 6,
    /// The sender closes the connection after the calls up to `last_cid`.
    Goaway = 7,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Hello,
            2 => Self::Request,
            3 => Self::Reply,
            4 => Self::Cancel,
            5 => Self::Ping,
            6 => Self::Pong,
            7 => Self::Goaway,
            _ => return None,
        })
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes that follow.
    pub len: u32,
    /// What the frame is.
    pub kind: Kind,
    /// `route << 16 | msg_type`.
    pub type_id: u32,
    /// Remaining deadline budget in microseconds (requests), 0 for none.
    pub deadline_us: u32,
    /// The call (or ping token).
    pub correlation_id: u64,
}

/// Why bytes are not a valid frame. Each closes the connection that sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `kind` is not one of [`Kind`].
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// `flags` or the reserved field is not 0.
    #[error("reserved header bits are set")]
    Reserved,
    /// The payload is larger than the negotiated maximum.
    #[error("frame of {len} bytes exceeds the {max}-byte maximum")]
    TooLarge {
        /// What the header announced.
        len: u32,
        /// The negotiated maximum.
        max: u32,
    },
    /// A request, reply or cancel without a correlation id.
    #[error("{0:?} frame without a correlation id")]
    NoCorrelationId(Kind),
    /// A request for the reserved msg_type 0xFFFF.
    #[error("request for the reserved msg_type 0xFFFF")]
    ReservedMsgType,
    /// A hello whose payload is not 16 bytes starting with "TCHT".
    #[error("malformed hello")]
    BadHello,
}

impl Header {
    /// A header of `kind` with everything else zero.
    pub fn new(kind: Kind) -> Self {
        Self { len: 0, kind, type_id: 0, deadline_us: 0, correlation_id: 0 }
    }

    /// The wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4] = self.kind as u8;
        b[8..12].copy_from_slice(&self.type_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.deadline_us.to_le_bytes());
        b[16..24].copy_from_slice(&self.correlation_id.to_le_bytes());
        b
    }

    /// Parses and checks a header, against a payload limit of `max_len`.
    ///
    /// # Errors
    /// A [`FrameError`] naming the first problem.
    pub fn decode(b: &[u8; HEADER_LEN], max_len: u32) -> Result<Self, FrameError> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kind = Kind::from_u8(b[4]).ok_or(FrameError::UnknownKind(b[4]))?;
        if b[5] != 0 || b[6] != 0 || b[7] != 0 {
            return Err(FrameError::Reserved);
        }
        let len = u32_at(0);
        if len > max_len.min(MAX_FRAME_LIMIT) {
            return Err(FrameError::TooLarge { len, max: max_len.min(MAX_FRAME_LIMIT) });
        }
        let mut cid = [0u8; 8];
        cid.copy_from_slice(&b[16..24]);
        let h = Self {
            len,
            kind,
            type_id: u32_at(8),
            deadline_us: u32_at(12),
            correlation_id: u64::from_le_bytes(cid),
        };
        // A request with correlation id 0 is a oneway one (no reply); replies and cancels
        // always name a call.
        if matches!(kind, Kind::Reply | Kind::Cancel) && h.correlation_id == 0 {
            return Err(FrameError::NoCorrelationId(kind));
        }
        if kind == Kind::Request && crate::msg_type(h.type_id) == MSG_TYPE_ERROR {
            return Err(FrameError::ReservedMsgType);
        }
        if kind == Kind::Hello && len as usize != HELLO_LEN {
            return Err(FrameError::BadHello);
        }
        Ok(h)
    }

    /// The msg_type (bits 15..0 of the type id).
    pub fn msg_type(&self) -> u16 {
        crate::msg_type(self.type_id)
    }
}

/// A hello's payload: who speaks which version with which limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The highest frame version the sender speaks.
    pub version: u16,
    /// The largest payload the sender accepts.
    pub max_frame: u32,
    /// The most calls the sender allows in flight on the connection.
    pub max_in_flight: u32,
}

impl Hello {
    /// The 16 payload bytes.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..4].copy_from_slice(&HELLO_MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.max_frame.to_le_bytes());
        b[12..16].copy_from_slice(&self.max_in_flight.to_le_bytes());
        b
    }

    /// Parses a hello payload.
    ///
    /// # Errors
    /// [`FrameError::BadHello`].
    pub fn decode(b: &[u8]) -> Result<Self, FrameError> {
        if b.len() != HELLO_LEN || b[0..4] != HELLO_MAGIC {
            return Err(FrameError::BadHello);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Self {
            version: u16::from_le_bytes([b[4], b[5]]),
            max_frame: u32_at(8),
            max_in_flight: u32_at(12),
        })
    }

    /// The hello frame (header and payload).
    pub fn frame(&self) -> Vec<u8> {
        let h = Header { len: HELLO_LEN as u32, ..Header::new(Kind::Hello) };
        let mut out = Vec::with_capacity(HEADER_LEN + HELLO_LEN);
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&self.encode());
        out
    }
}

/// Why a goaway was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum GoawayCode {
    /// The server is shutting down: calls up to `last_cid` are answered.
    Shutdown = 0,
    /// The peer broke the frame protocol.
    Protocol = 1,
    /// The server is at its connection limit.
    TooManyConnections = 2,
    /// No hello came in time.
    HelloTimeout = 3,
    /// A frame stalled mid-way (or the connection idled) past the read timeout.
    ReadTimeout = 4,
    /// A frame over the negotiated maximum.
    FrameTooLarge = 5,
    /// More calls in flight than negotiated.
    TooManyInFlight = 6,
    /// No common frame version.
    Version = 7,
    /// The peer is not allowed (a TLS or address policy refused it).
    Refused = 8,
}

impl GoawayCode {
    /// The code for a wire value (unknown values read as `Protocol`).
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => Self::Shutdown,
            2 => Self::TooManyConnections,
            3 => Self::HelloTimeout,
            4 => Self::ReadTimeout,
            5 => Self::FrameTooLarge,
            6 => Self::TooManyInFlight,
            7 => Self::Version,
            8 => Self::Refused,
            _ => Self::Protocol,
        }
    }
}

/// A goaway's payload: the last call that will be answered, why, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goaway {
    /// Calls with an id up to this one are answered; later ones are not.
    pub last_cid: u64,
    /// Why.
    pub code: GoawayCode,
    /// A human-readable reason (at most 256 bytes on the wire).
    pub message: String,
}

impl Goaway {
    /// The goaway frame.
    pub fn frame(&self) -> Vec<u8> {
        let msg = self.message.as_bytes();
        let msg = &msg[..msg.len().min(256)];
        let h = Header { len: (12 + msg.len()) as u32, ..Header::new(Kind::Goaway) };
        let mut out = Vec::with_capacity(HEADER_LEN + 12 + msg.len());
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&self.last_cid.to_le_bytes());
        out.extend_from_slice(&(self.code as u32).to_le_bytes());
        out.extend_from_slice(msg);
        out
    }

    /// Parses a goaway payload (a short one reads as a protocol goaway).
    pub fn decode(b: &[u8]) -> Self {
        if b.len() < 12 {
            return Self {
                last_cid: 0,
                code: GoawayCode::Protocol,
                message: "short goaway".into(),
            };
        }
        let mut cid = [0u8; 8];
        cid.copy_from_slice(&b[0..8]);
        Self {
            last_cid: u64::from_le_bytes(cid),
            code: GoawayCode::from_u32(u32::from_le_bytes([b[8], b[9], b[10], b[11]])),
            message: String::from_utf8_lossy(&b[12..b.len().min(12 + 256)]).into_owned(),
        }
    }
}

/// Appends a request or reply frame to `out`.
pub fn push_message(
    out: &mut Vec<u8>,
    kind: Kind,
    type_id: u32,
    correlation_id: u64,
    deadline_us: u32,
    payload: &[u8],
) {
    let h = Header { len: payload.len() as u32, kind, type_id, deadline_us, correlation_id };
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(payload);
}

/// Appends a payload-less control frame (cancel, ping, pong) to `out`.
pub fn push_control(out: &mut Vec<u8>, kind: Kind, token: u64) {
    out.extend_from_slice(&Header { correlation_id: token, ..Header::new(kind) }.encode());
}

/// Splits complete frames off the front of a byte stream. Feed it what the socket gave
/// and take frames while [`Decoder::next`] returns them; a partial frame stays buffered.
/// A payload is handed out as a slice of the input (no copy) when it is complete there.
#[derive(Debug)]
pub struct Decoder {
    max_len: u32,
}

/// One step of [`Decoder::next`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A complete frame and its payload; `used` bytes of the input are consumed.
    Frame {
        /// The header.
        header: Header,
        /// The payload.
        payload: &'a [u8],
        /// Bytes of the input the frame took.
        used: usize,
    },
    /// More bytes are needed (`have` of a frame so far).
    Partial,
}

impl Decoder {
    /// A decoder refusing payloads over `max_len`.
    pub fn new(max_len: u32) -> Self {
        Self { max_len }
    }

    /// Changes the payload limit (after the hello).
    pub fn set_max_len(&mut self, max_len: u32) {
        self.max_len = max_len;
    }

    /// The payload limit.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// The next complete frame at the front of `input`.
    ///
    /// # Errors
    /// The header's [`FrameError`] (the connection must be closed).
    pub fn next<'a>(&self, input: &'a [u8]) -> Result<Step<'a>, FrameError> {
        let Some(head) = input.first_chunk::<HEADER_LEN>() else { return Ok(Step::Partial) };
        let header = Header::decode(head, self.max_len)?;
        let end = HEADER_LEN + header.len as usize;
        match input.get(HEADER_LEN..end) {
            Some(payload) => Ok(Step::Frame { header, payload, used: end }),
            None => Ok(Step::Partial),
        }
    }
}

#[cfg(feature = "test-hooks")]
/// Plays a hostile peer against the decoder: arbitrary bytes, split at arbitrary points,
/// must decode to frames that re-encode to the same bytes, or to an error, never a panic
/// or an out-of-bounds read. For `cargo fuzz` and the corpus replay.
///
/// # Panics
/// When a frame does not re-encode to its bytes (the bug it looks for).
#[doc(hidden)]
pub fn fuzz_frames(data: &[u8]) {
    let Some((&limit, data)) = data.split_first() else { return };
    let d = Decoder::new(u32::from(limit) << 4);
    let mut at = 0;
    while at < data.len() {
        match d.next(&data[at..]) {
            Ok(Step::Frame { header, payload, used }) => {
                assert_eq!(&header.encode()[..], &data[at..at + HEADER_LEN]);
                assert_eq!(payload.len(), header.len as usize);
                match header.kind {
                    Kind::Hello => {
                        let _ = Hello::decode(payload);
                    }
                    Kind::Goaway => {
                        let g = Goaway::decode(payload);
                        std::hint::black_box(g);
                    }
                    Kind::Reply if header.msg_type() == MSG_TYPE_ERROR => {
                        std::hint::black_box(crate::rpc::RpcError::decode(payload));
                    }
                    _ => {}
                }
                at += used;
            }
            Ok(Step::Partial) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_named() {
        let h = Header {
            len: 5,
            kind: Kind::Request,
            type_id: 0x0001_0007,
            deadline_us: 1500,
            correlation_id: 42,
        };
        assert_eq!(Header::decode(&h.encode(), 1024), Ok(h));
        let mut b = h.encode();
        b[4] = 9;
        assert_eq!(Header::decode(&b, 1024), Err(FrameError::UnknownKind(9)));
        let mut b = h.encode();
        b[5] = 1;
        assert_eq!(Header::decode(&b, 1024), Err(FrameError::Reserved));
        assert_eq!(Header::decode(&h.encode(), 4), Err(FrameError::TooLarge { len: 5, max: 4 }));
        let oneway = Header { correlation_id: 0, ..h };
        assert_eq!(Header::decode(&oneway.encode(), 1024), Ok(oneway));
        let zero = Header { correlation_id: 0, ..Header::new(Kind::Reply) };
        assert_eq!(
            Header::decode(&zero.encode(), 1024),
            Err(FrameError::NoCorrelationId(Kind::Reply))
        );
        let err = Header { type_id: 0xFFFF, ..h };
        assert_eq!(Header::decode(&err.encode(), 1024), Err(FrameError::ReservedMsgType));
    }

    #[test]
    fn the_decoder_splits_a_stream_at_any_point() {
        let mut stream = Vec::new();
        stream.extend_from_slice(
            &Hello { version: 1, max_frame: 1 << 20, max_in_flight: 64 }.frame(),
        );
        push_message(&mut stream, Kind::Request, 7, 1, 0, b"hello");
        push_control(&mut stream, Kind::Ping, 99);
        let d = Decoder::new(1 << 20);
        for cut in 0..=stream.len() {
            let (a, _) = stream.split_at(cut);
            let mut at = 0;
            let mut n = 0;
            while let Ok(Step::Frame { used, .. }) = d.next(&a[at..]) {
                at += used;
                n += 1;
            }
            assert!(n <= 3);
        }
        let Ok(Step::Frame { header, payload, used }) = d.next(&stream[HEADER_LEN + HELLO_LEN..])
        else {
            panic!("a request")
        };
        assert_eq!(
            (header.kind, header.correlation_id, payload, used),
            (Kind::Request, 1, &b"hello"[..], 29)
        );
    }

    #[test]
    fn goaway_and_hello_round_trip() {
        let g = Goaway { last_cid: 9, code: GoawayCode::Shutdown, message: "bye".into() };
        let f = g.frame();
        assert_eq!(Goaway::decode(&f[HEADER_LEN..]), g);
        let h = Hello { version: 1, max_frame: 100, max_in_flight: 7 };
        assert_eq!(Hello::decode(&h.frame()[HEADER_LEN..]), Ok(h));
        assert_eq!(Hello::decode(b"XXXX____________"), Err(FrameError::BadHello));
    }
}
