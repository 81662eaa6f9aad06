//! The schema-generated services the cross-language tests use: `conformance` (every
//! type of the language, from `tests/schemas/conformance.tachyon`) with a mirroring
//! implementation, and random values of its `Everything` struct.
// Random test values: wrapping casts and lossy floats are the point.
#![allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]

use std::collections::BTreeMap;

use tachyon::rpc::ServerError;

tachyon::include_schema!("schemas/conformance.tachyon");

pub use conformance::{Color, Conformance, ConformanceAsync, ConformanceClient, Everything, Leaf};

/// Mirrors every value; `check` rejects the text "reject" with the schema's `rejected`;
/// `record` (oneway) counts what it got.
#[derive(Debug, Default)]
pub struct Mirror(pub std::sync::atomic::AtomicU64);

impl Conformance for Mirror {
    fn mirror(&self, req: Everything) -> Result<Everything, ServerError> {
        Ok(req)
    }

    fn check(&self, req: Everything) -> Result<bool, ServerError> {
        if req.text == "reject" {
            return Err(conformance::conformance::errors::rejected("rejected as asked"));
        }
        Ok(true)
    }

    fn record(&self, _req: Leaf) -> Result<(), ServerError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn recorded(&self, _req: &[u8]) -> Result<u64, ServerError> {
        Ok(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// A deterministic pseudo-random source (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        crate::splitmix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    fn text(&mut self) -> String {
        const ALPHABET: &[char] = &['a', 'Z', '0', ' ', 'é', '✓', '"', '\\', '𝄞', '_'];
        let n = self.below(12);
        (0..n).map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize]).collect()
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.below(40);
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    fn leaf(&mut self) -> Leaf {
        let tags = (0..self.below(4)).map(|_| self.text()).collect();
        Leaf { name: self.text(), tags }
    }
    /// Any finite f64, integers and fractions both (JS writes integral floats as ints).
    fn float(&mut self) -> f64 {
        match self.below(4) {
            0 => 0.0,
            1 => (self.below(1000) as f64) - 500.0,
            2 => f64::from_bits(self.next_u64() & 0x3FEF_FFFF_FFFF_FFFF) * 1e6,
            _ => -1.5e-300,
        }
    }

    /// A random `Everything` with up to `depth` levels of children. Integers cover each
    /// type's extremes; 64-bit ones too.
    pub fn everything(&mut self, depth: u32) -> Everything {
        let pick_u64 = |r: &mut Rng| match r.below(3) {
            0 => u64::MAX,
            1 => r.below(100),
            _ => r.next_u64(),
        };
        let pick_signed = |r: &mut Rng| match r.below(3) {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => r.next_u64() as i64,
        };
        let mut by_name = BTreeMap::new();
        for _ in 0..self.below(3) {
            by_name.insert(self.text(), self.leaf());
        }
        let children = if depth == 0 {
            Vec::new()
        } else {
            (0..self.below(3)).map(|_| self.everything(depth - 1)).collect()
        };
        Everything {
            u8v: self.next_u64() as u8,
            u16v: self.next_u64() as u16,
            u32v: if self.below(2) == 0 { u32::MAX } else { self.next_u64() as u32 },
            u64v: pick_u64(self),
            i8v: self.next_u64() as i8,
            i16v: self.next_u64() as i16,
            i32v: if self.below(2) == 0 { i32::MIN } else { self.next_u64() as i32 },
            i64v: pick_signed(self),
            f64v: self.float(),
            flag: self.below(2) == 0,
            text: self.text(),
            blob: self.bytes(),
            color: match self.below(3) {
                0 => Color::Red,
                1 => Color::Green,
                _ => Color::Blue,
            },
            leaf: self.leaf(),
            leaves: (0..self.below(3)).map(|_| self.leaf()).collect(),
            by_name,
            nested: (0..self.below(3))
                .map(|_| (0..self.below(3)).map(|_| self.next_u64() as i32).collect())
                .collect(),
            blobs: (0..self.below(3)).map(|_| serde_bytes::ByteBuf::from(self.bytes())).collect(),
            maybe: if self.below(2) == 0 { None } else { Some(self.text()) },
            maybe_leaf: if self.below(2) == 0 { None } else { Some(self.leaf()) },
            maybe_blob: if self.below(2) == 0 { None } else { Some(self.bytes()) },
            level: self.next_u64() as i32,
            r#type: self.text(),
            children,
        }
    }
}

/// `tests/schemas/streaming/feed.tachyon`: a service with server-streaming methods.
pub mod feed_schema {
    tachyon::include_schema!("schemas/streaming/feed.tachyon");
}

pub use feed_schema::feed::{Feed, FeedClient, Sub, Tick};

/// The `Feed` server the tests run: `ticks` sends `count` ticks (counting each in `sent`,
/// so a test can see a cancelled stream stop), `bytes_of` one item per request byte.
#[derive(Debug, Default)]
pub struct FeedServer(pub std::sync::atomic::AtomicU64);

impl Feed for FeedServer {
    fn ticks(
        &self,
        req: Sub,
        sink: &mut tachyon::rpc::TypedSink<'_, '_, Tick>,
    ) -> Result<(), ServerError> {
        for seq in 0..req.count {
            sink.send(&Tick { symbol: req.symbol.clone(), seq, price: f64::from(seq) / 4.0 })?;
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    fn bytes_of(
        &self,
        req: &[u8],
        sink: &mut tachyon::rpc::StreamSink<'_>,
    ) -> Result<(), ServerError> {
        for b in req {
            sink.send(&[*b])?;
        }
        Ok(())
    }

    fn sent(&self, _req: &[u8]) -> Result<u64, ServerError> {
        Ok(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// What a `Feed` client checks against any server: `verify`, `count` ticks in order,
/// `bytes_of`, then a stream of a billion ticks cancelled after `count / 2`, which must
/// stop the server (its `sent` stops growing) and free the call. Returns the ticks the
/// server sent for the cancelled stream.
///
/// # Errors
/// [`tachyon::Error::Protocol`] naming what went wrong; the transport's errors.
pub fn check_feed<C: tachyon::rpc::Caller>(
    client: &FeedClient<C>,
    count: u32,
    in_flight: impl Fn() -> usize,
) -> tachyon::Result<u64> {
    use tachyon::Error;
    client.verify()?;
    let mut n = 0u32;
    for t in client.ticks(&Sub { symbol: "TCHY".into(), count })? {
        let t = t?;
        if t.seq != n || t.symbol != "TCHY" || (t.price - f64::from(n) / 4.0).abs() > f64::EPSILON {
            return Err(Error::Protocol(format!("tick {n} came back as {t:?}")));
        }
        n += 1;
    }
    if n != count {
        return Err(Error::Protocol(format!("{n} ticks of {count}")));
    }
    let raw: Vec<Vec<u8>> = client.bytes_of(b"abc")?.collect::<tachyon::Result<_>>()?;
    if raw != [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()] {
        return Err(Error::Protocol(format!("bytes_of(abc) streamed {raw:?}")));
    }
    let before = client.sent(b"")?;
    let mut s = client.ticks(&Sub { symbol: "X".into(), count: 1_000_000_000 })?;
    for want in 0..count / 2 {
        match s.next() {
            Some(Ok(t)) if t.seq == want => {}
            other => return Err(Error::Protocol(format!("tick {want}: {other:?}"))),
        }
    }
    drop(s); // cancels
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while in_flight() != 0 {
        if std::time::Instant::now() > deadline {
            return Err(Error::Protocol("the cancelled stream never ended".into()));
        }
        client.sent(b"")?;
    }
    // A server's handler may take one more item while the cancel reaches it (Node's
    // pump asks its generator for the next item before it learns the stream is over,
    // and the generator counts the item then); after that the count must stand still.
    let stopped = client.sent(b"")? - before;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let settled = client.sent(b"")? - before;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let later = client.sent(b"")? - before;
    if settled - stopped > 1 || later != settled || later >= 1_000_000 {
        return Err(Error::Protocol(format!(
            "the server kept streaming after the cancel: {stopped}, {settled}, then {later}"
        )));
    }
    Ok(later)
}
