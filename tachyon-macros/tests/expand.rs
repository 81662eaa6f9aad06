//! The expansion of `#[tachyon_rpc]` and `dispatcher!`, compiled under strict lints and
//! exercised: constants, the untouched function, dispatching, and typed clients over a
//! real shared-memory RPC bus.
#![deny(warnings, missing_docs, unused_qualifications)]
#![warn(clippy::pedantic)]
#![allow(clippy::must_use_candidate)] // on the user-written handlers, not the expansion
//! (crate docs, required by `missing_docs`)

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tachyon::rpc::{code, Endpoint, RpcBus, ServerError, MSG_TYPE_ERROR};
use tachyon_macros::{dispatcher, tachyon_rpc};

/// Request of `add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddReq {
    /// Left operand.
    pub a: i64,
    /// Right operand.
    pub b: i64,
}

/// Response of `add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResp {
    /// `a + b`.
    pub sum: i64,
}

/// Adds two numbers (typed, infallible).
#[tachyon_rpc(msg_type = 1)]
pub fn add(req: AddReq) -> AddResp {
    AddResp { sum: req.a + req.b }
}

/// Divides (typed, fallible, renamed).
///
/// # Errors
/// On division by zero.
#[tachyon_rpc(msg_type = 2, name = "divide")]
pub fn div(req: (i64, i64)) -> Result<i64, String> {
    if req.1 == 0 {
        return Err("division by zero".to_owned());
    }
    Ok(req.0 / req.1)
}

/// Echoes raw bytes.
#[tachyon_rpc(msg_type = 0x0003)]
pub fn echo(req: &[u8]) -> Vec<u8> {
    req.to_vec()
}

/// Raw and fallible, at the top of the range.
#[tachyon_rpc(msg_type = 65534)]
fn top(req: &[u8]) -> Result<Vec<u8>, ServerError> {
    if req.is_empty() {
        return Err(ServerError::new(77, "empty"));
    }
    Ok(req.iter().rev().copied().collect())
}

#[test]
fn constants_and_names() {
    assert_eq!((add::MSG_TYPE, add::NAME), (1, "add"));
    assert_eq!((div::MSG_TYPE, div::NAME), (2, "divide"));
    assert_eq!((echo::MSG_TYPE, top::MSG_TYPE), (3, 65534));
    assert_eq!(<div::Endpoint as Endpoint>::NAME, "divide");
}

#[test]
fn the_function_is_still_a_function() {
    assert_eq!(add(AddReq { a: 2, b: 3 }), AddResp { sum: 5 });
    assert_eq!(top(b"ab").unwrap(), b"ba");
}

#[test]
fn dispatcher_routes_by_msg_type() {
    let d = dispatcher![add, div, echo, top];
    assert_eq!(d.msg_types(), vec![1, 2, 3, 65534]);
    assert_eq!(d.handler_name(2), Some("divide"));
    let mut out = Vec::new();
    let req = tachyon::rpc::codec::encode(&AddReq { a: 40, b: 2 }).unwrap();
    assert_eq!(d.dispatch(1, &req, &mut out), 1);
    assert_eq!(tachyon::rpc::codec::decode::<AddResp>(&out).unwrap().sum, 42);
    assert_eq!(
        d.dispatch(2, &tachyon::rpc::codec::encode(&(1, 0)).unwrap(), &mut out),
        MSG_TYPE_ERROR
    );
    let e = tachyon::rpc::RpcError::decode(&out);
    assert_eq!(
        (e.msg_type, e.code, e.message.as_str()),
        (2, code::HANDLER_ERROR, "division by zero")
    );
    assert_eq!(d.dispatch(65534, b"", &mut out), MSG_TYPE_ERROR);
    assert_eq!(tachyon::rpc::RpcError::decode(&out).code, 77);
}

#[test]
fn typed_clients_over_a_real_rpc_bus() {
    let path = format!("/tmp/tachyon-macros-{}.sock", std::process::id());
    let server_path = path.clone();
    let server = std::thread::spawn(move || {
        let bus = RpcBus::listen_timeout(&server_path, 1 << 14, 1 << 14, Duration::from_secs(10))
            .unwrap();
        let d = dispatcher![add, div, echo, top];
        let stop = std::sync::atomic::AtomicBool::new(false);
        d.serve(&bus, &stop, &tachyon::rpc::ServeOptions::default()).unwrap();
    });
    let client = loop {
        match RpcBus::connect(&path) {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    assert_eq!(add::call(&client, &AddReq { a: 1, b: 2 }).unwrap(), AddResp { sum: 3 });
    assert_eq!(div::call_timeout(&client, &(9, 3), Duration::from_secs(5)).unwrap(), 3);
    match div::call(&client, &(1, 0)) {
        Err(tachyon::Error::Rpc(e)) => assert_eq!((e.msg_type, e.code), (2, code::HANDLER_ERROR)),
        other => panic!("expected an RpcError, got {other:?}"),
    }
    assert_eq!(echo::call(&client, b"raw bytes").unwrap(), b"raw bytes");
    assert_eq!(top::call(&client, b"xyz").unwrap(), b"zyx");
    drop(client);
    server.join().unwrap();
}
