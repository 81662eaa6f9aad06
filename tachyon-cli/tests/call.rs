//! `tachyon call` against the test service served over TCP and over shared memory:
//! raw and typed calls, the decoded error reply, and bad input.

use std::process::{Command, Output};
use std::sync::Arc;

use tachyon::net::{TcpServer, TcpServerOptions};
use tachyon::rpc::{RpcServer, ServerOptions};

fn tachyon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tachyon")).args(args).output().expect("run tachyon")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

fn calls_against(addr: &str) {
    // Raw: text in, text out; hex in, hex out.
    let o = tachyon(&["call", addr, "1", "hello there"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello there");
    let o = tachyon(&["call", addr, "1", "--hex", "00 ff 10", "--out", "hex"]);
    assert_eq!(stdout(&o), "00ff10", "{}", stderr(&o));
    // Typed: JSON in (as MessagePack), the MessagePack reply printed as JSON.
    let o = tachyon(&["call", addr, "2", "--json", r#"{"a": 40, "b": 2}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["sum"], 42);
    // The 0xFFFF error reply, decoded, exit 3.
    let o = tachyon(&["call", addr, "3", "--json", r#""nope""#]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("nope") && stderr(&o).contains("code 2"), "{}", stderr(&o));
    let o = tachyon(&["call", addr, "999"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("unknown msg_type"), "{}", stderr(&o));
    // A typed handler given bytes it cannot decode: BAD_REQUEST, still exit 3.
    let o = tachyon(&["call", addr, "2", "not msgpack"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn call_over_tcp_raw_typed_and_error_replies() {
    let opts = TcpServerOptions::default().on_error(|_| {});
    let h = TcpServer::bind("tcp://127.0.0.1:0", opts)
        .unwrap()
        .spawn(Arc::new(tachyon_tests::service::dispatcher()))
        .unwrap();
    calls_against(&h.address());
}

#[test]
fn call_over_shared_memory_raw_typed_and_error_replies() {
    let path = tachyon_tests::socket_path("cli-call");
    let _h = RpcServer::bind(&path, ServerOptions::default())
        .unwrap()
        .spawn(Arc::new(tachyon_tests::service::dispatcher()));
    calls_against(&path);
}

#[test]
fn bad_input_is_a_clear_usage_error() {
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "1", "x", "--timeout-ms", "500"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).is_empty());
    let o = tachyon(&["call", "/tmp/no-such-tachyon.sock", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "1", "--hex", "abc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("even number"), "{}", stderr(&o));
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "65535"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("reserved"), "{}", stderr(&o));
    let o = tachyon(&["call", "tcp://127.0.0.1:1", "70000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a msg_type"), "{}", stderr(&o));
}

/// The demo's quote service (schemas/quote.tachyon): quote = 1 (typed), echo = 2 (raw),
/// error bad_order = 100.
fn quote_service() -> tachyon::rpc::Dispatcher {
    use tachyon::rpc::ServerError;
    let mut d = tachyon::rpc::Dispatcher::new();
    d.register_raw_fallible(1, "quote", |req: &[u8]| {
        let q: serde_json::Value = tachyon::rpc::codec::decode(req)
            .map_err(|e| ServerError::new(tachyon::rpc::code::BAD_REQUEST, e.to_string()))?;
        if q["symbol"].as_str().is_none_or(str::is_empty) {
            return Err(ServerError::new(100, "the symbol is empty"));
        }
        let reply =
            serde_json::json!({"symbol": q["symbol"], "bid": 1.5, "ask": 2.5, "qty": q["qty"]});
        tachyon::rpc::codec::encode(&reply).map_err(|e| ServerError::new(5, e.to_string()))
    })
    .unwrap();
    d.register_raw(2, "echo", <[u8]>::to_vec).unwrap();
    d
}

#[test]
fn call_by_method_name_with_the_schema() {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/quote.tachyon");
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
    let h = TcpServer::bind("tcp://127.0.0.1:0", TcpServerOptions::default().on_error(|_| {}))
        .unwrap()
        .spawn(Arc::new(quote_service()))
        .unwrap();
    let addr = h.address();
    // Typed: the payload is JSON, sent as MessagePack; the reply printed as JSON.
    let o =
        tachyon(&["call", &addr, "quote", "--schema", schema, r#"{"symbol": "ACME", "qty": 5}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["symbol"].as_str(), v["qty"].as_u64()), (Some("ACME"), Some(5)));
    // Raw, named with its service, the schema given as a directory.
    let o = tachyon(&["call", &addr, "Quotes.echo", "--schema", schemas, "raw bytes"]);
    assert_eq!(stdout(&o), "raw bytes", "{}", stderr(&o));
    // The service's own error code, printed by its name.
    let o = tachyon(&["call", &addr, "quote", "--schema", schema, r#"{"symbol": "", "qty": 1}"#]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("bad_order (code 100)"), "{}", stderr(&o));
    // A method the schema does not have: the ones it has are listed.
    let o = tachyon(&["call", &addr, "nope", "--schema", schema]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Quotes.quote = 1"), "{}", stderr(&o));
    // A typed method given text that is not JSON.
    let o = tachyon(&["call", &addr, "quote", "--schema", schema, "not json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not JSON"), "{}", stderr(&o));
}
