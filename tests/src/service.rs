//! The RPC service the cross-process and cross-language tests call: one handler of each
//! kind, built with `#[tachyon_rpc]`. msg_types are fixed here and mirrored by the Python
//! and Node tests.

use serde::{Deserialize, Serialize};
use tachyon::rpc::{Dispatcher, ServerError};
use tachyon_macros::{dispatcher, tachyon_rpc};

/// Request of [`add`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddReq {
    /// Left operand.
    pub a: i64,
    /// Right operand.
    pub b: i64,
}

/// Response of [`add`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResp {
    /// `a + b`.
    pub sum: i64,
}

/// Raw echo (msg_type 1).
#[tachyon_rpc(msg_type = 1)]
pub fn echo(req: &[u8]) -> Vec<u8> {
    req.to_vec()
}

/// Typed addition (msg_type 2).
#[tachyon_rpc(msg_type = 2)]
pub fn add(req: AddReq) -> AddResp {
    AddResp { sum: req.a.wrapping_add(req.b) }
}

/// Always fails with the request as its message (msg_type 3).
///
/// # Errors
/// Always.
#[tachyon_rpc(msg_type = 3)]
pub fn fail(req: String) -> Result<(), ServerError> {
    Err(ServerError::from(format!("failing on purpose: {req}")))
}

/// Panics (msg_type 4); the server must survive it.
#[tachyon_rpc(msg_type = 4)]
pub fn boom(req: &[u8]) -> Vec<u8> {
    panic!("boom handler called with {} bytes", req.len())
}

/// Sleeps the given milliseconds, then answers with them (msg_type 5). Counted by
/// duration ([`sleeps`]), so a test can tell whether its sleep started or ended.
#[tachyon_rpc(msg_type = 5)]
pub fn sleep_ms(req: u64) -> u64 {
    count_sleep(req, |c| c.0 += 1);
    std::thread::sleep(std::time::Duration::from_millis(req));
    count_sleep(req, |c| c.1 += 1);
    req
}

/// Sleeps of each duration (ms) this process's handlers started and finished.
static SLEEPS: std::sync::Mutex<std::collections::BTreeMap<u64, (u64, u64)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count_sleep(ms: u64, f: impl FnOnce(&mut (u64, u64))) {
    f(SLEEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(ms).or_default());
}

/// `(started, finished)`: how many [`sleep_ms`] calls of `ms` milliseconds this process's
/// in-process servers started and finished. Tests that run at the same time use
/// durations of their own.
pub fn sleeps(ms: u64) -> (u64, u64) {
    SLEEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&ms)
        .copied()
        .unwrap_or_default()
}

/// The server's process id (msg_type 6).
#[tachyon_rpc(msg_type = 6)]
pub fn whoami(req: ()) -> u32 {
    let () = req;
    std::process::id()
}

/// The caller's verified certificate name over mutual TLS, or `""` (msg_type 7).
#[tachyon_rpc(msg_type = 7)]
pub fn caller(req: ()) -> String {
    let () = req;
    tachyon::net::peer_identity().and_then(|p| p.name().map(str::to_owned)).unwrap_or_default()
}

/// All of the above, in one dispatcher.
pub fn dispatcher() -> Dispatcher {
    dispatcher![echo, add, fail, boom, sleep_ms, whoami, caller]
}
